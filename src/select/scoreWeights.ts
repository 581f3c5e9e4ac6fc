import { rm } from "node:fs/promises";
import { join } from "node:path";
import { LoramixError } from "../errors.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/** Per-example losses, or why they could not be had (the losses are then empty). */
export type WeightScore =
  | { losses: Float64Array; error?: undefined }
  | { losses: Float64Array; error: string };

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
 * Scores weight vectors over a bank's adapters: a single adapter from its own directory, a
 * mixture mixed (linear, SPEC §5) once into a scratch folder kept until `dispose`, so that a
 * candidate scored in several rounds is mixed (and converted) once. A blend of candidates (a fit
 * trial) mixes their materialized adapters, not the bank: a linear mix is linear in its weights,
 * so the blend of mixes is the mix of the blended weights, at a read of a few adapters instead of
 * the whole bank. One failure rule for candidates and trials alike: an abort is thrown, any other
 * failure comes back as `error`, for the caller to report and pass over.
 */
export class WeightScorer {
  private scratch: Promise<string> | undefined;
  private readonly mixed = new Map<Float64Array, Promise<string>>();
  private made = 0;
  /** Seconds spent mixing candidates and blends. */
  mixSeconds = 0;

  constructor(
    readonly scorer: CandidateScorer,
    /** The bank's adapter directories, parallel to every weight vector. */
    readonly adapters: readonly string[],
  ) {}

  /** Per-example losses under `weights` (null: the base model alone); a failure is thrown. */
  async losses(
    weights: Float64Array | null,
    examples: readonly ScoreExample[],
    signal?: AbortSignal,
  ): Promise<Float64Array> {
    const dir = weights === null ? null : await this.materialize(weights, signal);
    return this.scorer.losses(dir, examples, { signal });
  }

  /** `losses` under the failure rule. */
  score(
    weights: Float64Array,
    examples: readonly ScoreExample[],
    signal?: AbortSignal,
  ): Promise<WeightScore> {
    return this.guard(() => this.losses(weights, examples, signal));
  }

  /** The blend Σ shares[m] · parts[m], scored once and removed, under the failure rule. */
  scoreBlend(
    parts: readonly Float64Array[],
    shares: readonly number[],
    examples: readonly ScoreExample[],
    signal?: AbortSignal,
  ): Promise<WeightScore> {
    return this.guard(async () => {
      const dirs = await Promise.all(parts.map((p) => this.materialize(p, signal)));
      const dir = await this.freshDir();
      await this.timed(() => mixAdapters({ adapters: dirs, weights: [...shares], out: dir, signal }));
      try {
        return await this.scorer.losses(dir, examples, { signal });
      } finally {
        await this.scorer.release?.(dir);
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  private async guard(work: () => Promise<Float64Array>): Promise<WeightScore> {
    try {
      return { losses: await work() };
    } catch (error) {
      if (error instanceof LoramixError && error.code === "ABORTED") throw error;
      return { losses: new Float64Array(0), error: error instanceof Error ? error.message : String(error) };
    }
  }

  private materialize(weights: Float64Array, signal: AbortSignal | undefined): Promise<string> {
    const single = oneHot(weights);
    if (single >= 0) return Promise.resolve(this.adapters[single] as string);
    let dir = this.mixed.get(weights);
    if (dir === undefined) {
      dir = this.freshDir().then(async (out) => {
        await this.timed(() =>
          mixAdapters({ adapters: [...this.adapters], weights: [...weights], out, signal }),
        );
        return out;
      });
      // A failed mix is not kept: the next round tries again and reports its own failure.
      dir.catch(() => this.mixed.delete(weights));
      this.mixed.set(weights, dir);
    }
    return dir;
  }

  private async timed<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.mixSeconds += (performance.now() - started) / 1000;
    }
  }

  private async freshDir(): Promise<string> {
    this.scratch ??= scratchDir("select");
    return join(await this.scratch, String(this.made++));
  }

  async dispose(): Promise<void> {
    for (const made of this.mixed.values()) {
      const dir = await made.catch(() => null);
      if (dir !== null) await this.scorer.release?.(dir);
    }
    this.mixed.clear();
    if (this.scratch !== undefined) await removeScratch(await this.scratch);
    this.scratch = undefined;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** The mean of the losses (NaN for none: a failure). */
export function meanLoss(values: Float64Array): number {
  let s = 0;
  for (const v of values) s += v;
  return values.length === 0 ? Number.NaN : s / values.length;
}
