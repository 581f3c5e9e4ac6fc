import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LoramixError } from "../errors.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/** A weight vector's mean loss, or NaN and why it could not be scored. */
export type WeightScore = { loss: number; error?: undefined } | { loss: number; error: string };

/** The index of the one weight that is 1 when all others are 0, else -1. */
function oneHot(weights: Float64Array): number {
  let at = -1;
  for (let j = 0; j < weights.length; j++) {
    const w = weights[j] as number;
    if (w === 0) continue;
    if (w !== 1 || at >= 0) return -1;
    at = j;
  }
  return at;
}

/**
 * Scores weight vectors over a bank's adapters on examples: a single adapter from its own
 * directory, a mixture mixed (linear, SPEC §5) into a scratch folder that is removed once scored,
 * so at most one mixture is on disk at a time. One failure rule for candidates and fit trials
 * alike: an abort is thrown, any other failure comes back as `error` with a NaN loss, for the
 * caller to report and pass over.
 */
export class WeightScorer {
  private scratch: Promise<string> | undefined;
  private mixed = 0;

  constructor(
    readonly scorer: CandidateScorer,
    /** The bank's adapter directories, parallel to every weight vector. */
    readonly adapters: readonly string[],
  ) {}

  /** The base model's mean loss: no adapter. Its failure is thrown, as nothing can be compared without it. */
  async base(examples: readonly ScoreExample[], signal?: AbortSignal): Promise<number> {
    return mean(await this.scorer.losses(null, examples, { signal }));
  }

  async score(
    weights: Float64Array,
    examples: readonly ScoreExample[],
    signal?: AbortSignal,
  ): Promise<WeightScore> {
    try {
      return { loss: mean(await this.losses(weights, examples, signal)) };
    } catch (error) {
      if (error instanceof LoramixError && error.code === "ABORTED") throw error;
      return { loss: Number.NaN, error: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Every example's loss under the weights; a failure is thrown (`score` applies the failure rule). */
  async losses(
    weights: Float64Array,
    examples: readonly ScoreExample[],
    signal?: AbortSignal,
  ): Promise<Float64Array> {
    const single = oneHot(weights);
    if (single >= 0) return this.scorer.losses(this.adapters[single] as string, examples, { signal });
    this.scratch ??= mkdtemp(join(tmpdir(), "loramix-select-"));
    const dir = join(await this.scratch, String(this.mixed++));
    await mixAdapters({ adapters: [...this.adapters], weights: [...weights], out: dir, signal });
    try {
      return await this.scorer.losses(dir, examples, { signal });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async dispose(): Promise<void> {
    if (this.scratch !== undefined) await rm(await this.scratch, { recursive: true, force: true });
    this.scratch = undefined;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

function mean(values: Float64Array): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}
