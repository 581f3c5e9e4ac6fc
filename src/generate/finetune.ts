import { join, resolve } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { saveAdapter } from "../formats/peft.js";
import { type MixResult, mixedFiles } from "../merge/mixAdapters.js";
import type { SequenceRule } from "../train/examples.js";
import { type FinetuneResult, finetuneLora } from "../train/finetuneLora.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";

/** What loramix.json and the result say about a fine-tuning. */
export type FinetuneRecord = Omit<FinetuneResult, "tensors">;

/** loramix.json's "finetune" section: the record, and the model it trained on. */
export type FinetuneSection = FinetuneRecord & { model: string };

/**
 * Mixes into a scratch folder with `mix`, fine-tunes that mix on `records` with the CPU trainer,
 * and writes the fine-tuned adapter to `out` (the mix's adapter_config.json, dtype and tensor order;
 * its loramix.json completed with a "finetune" section) in one atomic step: an interrupted run
 * leaves neither the mix nor a half-trained adapter at `out`.
 */
export async function mixAndFinetune<R extends object>(
  mix: (scratch: string) => Promise<MixResult<R>>,
  {
    model,
    records,
    steps,
    lr,
    rule,
    out,
    signal,
    progress,
  }: {
    model: string;
    records: readonly DatasetRecord[];
    steps: number;
    /** Peak learning rate (default: finetuneLora's). */
    lr?: number;
    rule: SequenceRule;
    out: string;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ mix: MixResult<R & { finetune: FinetuneSection }>; finetune: FinetuneRecord }> {
  const scratch = await scratchDir("finetune");
  try {
    const mixDir = join(scratch, "mix");
    const mixed = await mix(mixDir);
    const { tensors, ...finetune } = await finetuneLora({
      model,
      adapter: mixDir,
      records,
      steps,
      ...(lr === undefined ? {} : { lr }),
      rule,
      signal,
      progress,
    });
    const record = { ...mixed.record, finetune: { ...finetune, model: resolve(model) } };
    await saveAdapter(out, {
      config: mixed.adapterConfig,
      tensors,
      extraFiles: mixedFiles(record, mixed.synthetic),
    });
    return { mix: { ...mixed, out, record }, finetune };
  } finally {
    await removeScratch(scratch);
  }
}
