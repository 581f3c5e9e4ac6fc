import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { ADAPTER_CONFIG, ADAPTER_RECORD, ADAPTER_WEIGHTS } from "../formats/fileNames.js";
import { saveAdapter } from "../formats/peft.js";
import type { MixResult } from "../merge/mixAdapters.js";
import { type FinetuneResult, finetuneLora } from "../train/finetuneLora.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";

/** What loramix.json and the result say about a fine-tuning. */
export type FinetuneRecord = Omit<FinetuneResult, "tensors">;

/**
 * Mixes into a scratch folder with `mix`, fine-tunes that mix on `records` with the CPU trainer,
 * and writes the fine-tuned adapter to `out` (the mix's adapter_config.json, dtype and tensor order;
 * its loramix.json plus a "finetune" section) in one atomic step: an interrupted run leaves neither
 * the mix nor a half-trained adapter at `out`.
 */
export async function mixAndFinetune(
  mix: (scratch: string) => Promise<MixResult>,
  {
    model,
    records,
    steps,
    lr,
    maxLength,
    maxOutputTokens,
    out,
    signal,
    progress,
  }: {
    model: string;
    records: readonly DatasetRecord[];
    steps: number;
    /** Peak learning rate (default: finetuneLora's). */
    lr?: number;
    maxLength: number;
    maxOutputTokens: number;
    out: string;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ mix: MixResult; finetune: FinetuneRecord }> {
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
      maxLength,
      maxOutputTokens,
      signal,
      progress,
    });
    const config = JSON.parse(await readFile(join(mixDir, ADAPTER_CONFIG), "utf8")) as Record<
      string,
      unknown
    >;
    // The mix's own records (loramix.json, the synthetic marker) travel with the fine-tuned adapter.
    const extraFiles: Record<string, string> = {};
    for (const name of await readdir(mixDir)) {
      if (name !== ADAPTER_CONFIG && name !== ADAPTER_WEIGHTS && name !== ADAPTER_RECORD)
        extraFiles[name] = await readFile(join(mixDir, name), "utf8");
    }
    const record = JSON.parse(await readFile(join(mixDir, ADAPTER_RECORD), "utf8")) as Record<
      string,
      unknown
    >;
    extraFiles[ADAPTER_RECORD] =
      `${JSON.stringify({ ...record, finetune: { ...finetune, model: resolve(model) } }, null, 2)}\n`;
    await saveAdapter(out, { config, tensors, extraFiles });
    return { mix: { ...mixed, out }, finetune };
  } finally {
    await removeScratch(scratch);
  }
}
