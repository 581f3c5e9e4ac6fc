import { rm } from "node:fs/promises";
import { join } from "node:path";
import { throwIfAborted, usageError } from "../errors.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import { seededRandom } from "../util/prng.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";
import type { ScoredCandidate } from "./selectByLoss.js";

/**
 * Candidates (the lowest losses) whose weights are refined, and loss evaluations spent on it.
 * Chosen by bench/select-fit.mjs on the testbed's non-held-out valid splits: 8 × 16 gave most of
 * 8 × 32's gain at half its time, and more than 4 × 16 or 4 × 32 (bench/RESULTS.md).
 */
export const DEFAULT_FIT_TOP = 8;
export const DEFAULT_FIT_TRIALS = 16;

export interface FitResult {
  /** Weights over the bank's adapters (sum 1). */
  weights: Float64Array;
  loss: number;
  /** The starting point's loss: the best candidate's. */
  startLoss: number;
  trials: number;
  seconds: number;
}

/** Box-Muller: a standard normal from two uniforms of the seeded generator. */
function gaussian(random: () => number): number {
  const u = Math.max(random(), Number.EPSILON);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/**
 * `--select fit`: refines the mix of the `top` lowest-loss candidates by a (1+1) evolution strategy
 * on softmax logits (zero-order, as LoraHub searches its weights; no gradients, so any base model
 * llama.cpp runs can be fitted). It starts at the best candidate and accepts a step only when the
 * mean train loss drops, so the result is never worse on the scored examples than plain selection.
 * Step size follows the 1/5th success rule; the search is seeded, hence reproducible.
 */
export async function fitWeights({
  scorer,
  adapters,
  scored,
  examples,
  top = DEFAULT_FIT_TOP,
  trials = DEFAULT_FIT_TRIALS,
  seed = 0,
  signal,
  progress,
}: {
  scorer: CandidateScorer;
  adapters: readonly string[];
  scored: readonly ScoredCandidate[];
  examples: readonly ScoreExample[];
  top?: number;
  trials?: number;
  seed?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<FitResult> {
  if (!(Number.isInteger(trials) && trials >= 1))
    throw usageError(`fit trials must be a positive integer, got ${trials}`);
  if (!(Number.isInteger(top) && top >= 2)) throw usageError(`fit needs at least 2 candidates, got ${top}`);
  const started = performance.now();
  const pool = scored
    .filter((c) => Number.isFinite(c.loss))
    .sort((a, b) => a.loss - b.loss)
    .slice(0, top);
  const best = pool[0];
  if (best === undefined) throw usageError("no scored candidate to start the fit from");
  const combine = (logits: Float64Array) => {
    const max = Math.max(...logits);
    const e = Array.from(logits, (x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const w = new Float64Array(best.weights.length);
    for (const [m, c] of pool.entries()) {
      const share = (e[m] as number) / sum;
      for (let j = 0; j < w.length; j++) w[j] = (w[j] as number) + share * (c.weights[j] as number);
    }
    return w;
  };
  if (pool.length < 2)
    return { weights: best.weights, loss: best.loss, startLoss: best.loss, trials: 0, seconds: 0 };

  const scratch = await scratchDir("fit");
  try {
    const lossOf = async (weights: Float64Array, k: number) => {
      const dir = join(scratch, String(k));
      await mixAdapters({ adapters: [...adapters], weights: [...weights], out: dir, signal });
      try {
        const l = await scorer.losses(dir, examples, { signal });
        return l.reduce((s, v) => s + v, 0) / l.length;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const random = seededRandom(seed);
    // Logit 4 on the best: ~89% of the weight with 8 candidates, so the first steps stay near it.
    let x = Float64Array.from(pool, (_, m) => (m === 0 ? 4 : 0));
    let weights = best.weights;
    let loss = best.loss;
    let sigma = 1;
    for (let t = 0; t < trials; t++) {
      throwIfAborted(signal);
      const y = Float64Array.from(x, (v) => v + sigma * gaussian(random));
      const w = combine(y);
      const l = await lossOf(w, t);
      if (l < loss) {
        x = y;
        weights = w;
        loss = l;
        sigma *= 1.5;
      } else sigma *= 0.9;
      progress?.({
        phase: "fit",
        done: t + 1,
        total: trials,
        unit: "trials",
        detail: `loss ${loss.toFixed(4)}`,
      });
    }
    return { weights, loss, startLoss: best.loss, trials, seconds: (performance.now() - started) / 1000 };
  } finally {
    await removeScratch(scratch);
  }
}
