import { join, resolve } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { LoramixError, option } from "../errors.js";
import { saveAdapter } from "../formats/peft.js";
import { type MixResult, mixedFiles } from "../merge/mixAdapters.js";
import type { SequenceRule } from "../train/examples.js";
import type { FinetuneResult } from "../train/finetuneLora.js";
import { TrainPool } from "../train/trainPool.js";
import { roughDuration } from "../util/duration.js";
import type { ProgressEvent, ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";

/** What loramix.json and the result say about a fine-tuning. */
export type FinetuneRecord = Omit<FinetuneResult, "tensors">;

/** loramix.json's "finetune" section: the record, and the model it trained on. */
export type FinetuneSection = FinetuneRecord & { model: string };

/**
 * Seconds a fine-tuning nobody asked for may take (the default's): a user waits minutes, not
 * hours. The estimate is the second step's time (the first compiles the model) times the steps.
 */
export const FINETUNE_TIME_LIMIT = 600;

/** Why the default's fine-tuning was left out: measured on its first steps, said in a note. */
export class FinetuneNotRun extends Error {}

/**
 * Mixes into a scratch folder with `mix`, fine-tunes that mix on `records` with the CPU trainer
 * (on a worker thread), and writes the fine-tuned adapter to `out` (the mix's adapter_config.json,
 * dtype and tensor order; its loramix.json completed with a "finetune" section) in one atomic
 * step: an interrupted run leaves neither the mix nor a half-trained adapter at `out`.
 *
 * With `limitSeconds`, the first steps decide: when the steps would take longer, or the model
 * does not fit the trainer's memory, FinetuneNotRun says why and nothing is written. Without it
 * (the user asked for these steps), only the memory failure stops it, as a one-line error.
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
    limitSeconds = null,
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
    limitSeconds?: number | null;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ mix: MixResult<R & { finetune: FinetuneSection }>; finetune: FinetuneRecord }> {
  const scratch = await scratchDir("finetune");
  const pool = new TrainPool(1);
  try {
    const mixDir = join(scratch, "mix");
    const mixed = await mix(mixDir);
    const guard = limitSeconds === null ? null : new StepGuard(steps, limitSeconds);
    const stop = new AbortController();
    const signals = [stop.signal, ...(signal ? [signal] : [])];
    let result: FinetuneResult;
    try {
      result = await pool.finetune({
        model,
        adapter: mixDir,
        records: [...records],
        steps,
        ...(lr === undefined ? {} : { lr }),
        rule,
        signal: AbortSignal.any(signals),
        progress: (e) => {
          progress?.(e);
          if (guard?.tooSlow(e)) stop.abort();
        },
      });
    } catch (error) {
      if (guard?.reason !== undefined && !signal?.aborted) throw new FinetuneNotRun(guard.reason);
      if (!(error instanceof LoramixError && error.code === "MEMORY")) throw error;
      if (limitSeconds !== null) throw new FinetuneNotRun(error.message);
      const f = option("finetune");
      throw new LoramixError("MEMORY", `${error.message}; or drop ${f.text}`, { cause: error, options: [f] });
    }
    const { tensors, ...finetune } = result;
    const record = { ...mixed.record, finetune: { ...finetune, model: resolve(model) } };
    await saveAdapter(out, {
      config: mixed.adapterConfig,
      tensors,
      extraFiles: mixedFiles(record, mixed.synthetic),
    });
    return { mix: { ...mixed, out, record }, finetune };
  } finally {
    await pool.close();
    await removeScratch(scratch);
  }
}

/** Watches the steps' times: after the second, the time of the rest is known well enough. */
class StepGuard {
  private firstDone: number | undefined;
  reason: string | undefined;

  constructor(
    private readonly steps: number,
    private readonly limitSeconds: number,
  ) {}

  tooSlow(e: ProgressEvent): boolean {
    if (e.phase !== "train" || this.reason !== undefined) return false;
    const now = performance.now();
    if (e.done === 1) this.firstDone = now;
    if (e.done !== 2 || this.firstDone === undefined) return false;
    const perStep = (now - this.firstDone) / 1000;
    const estimate = perStep * this.steps;
    if (estimate <= this.limitSeconds) return false;
    this.reason = `${this.steps} training steps would take about ${roughDuration(estimate)} on this machine (${perStep.toFixed(1)} s per step, measured), more than the ${roughDuration(this.limitSeconds)} a default run gives them; give --finetune ${this.steps} to train anyway`;
    return true;
  }
}
