import { throwIfAborted, usageError } from "../errors.js";
import { seededRandom } from "../util/prng.js";
import type { ProgressSink } from "../util/progress.js";
import type { Candidate } from "./candidates.js";
import type { ScoreExample } from "./scorer.js";
import { meanLoss, type WeightScorer } from "./scoreWeights.js";

/**
 * Candidates (the best first) whose weights are refined, and loss evaluations spent on it at most.
 * Chosen by bench/select-fit.mjs on the testbed's non-held-out valid splits: 8 × 16 gave most of
 * 8 × 32's gain at half its time, and more than 4 × 16 or 4 × 32 (bench/RESULTS.md).
 */
export const DEFAULT_FIT_TOP = 8;
export const DEFAULT_FIT_TRIALS = 16;

/** How the fit searches: over the `top` best candidates, `trials` scorings at most, from `seed`. */
export interface FitOptions {
  top?: number;
  trials?: number;
  seed?: number;
}

export interface FitResult {
  /** Weights over the bank's adapters (sum 1): the best candidate's when no trial beat it. */
  weights: Float64Array;
  loss: number;
  /** The starting point's loss: the best candidate's, on the same examples. */
  startLoss: number;
  trials: number;
  /** Examples each trial was scored on. */
  examples: number;
  /** Trials that could not be scored (each counted as a rejected step), with the first reason. */
  failed: { count: number; first: string } | null;
  seconds: number;
}

/** Box-Muller: a standard normal from two uniforms of the seeded generator. */
function gaussian(random: () => number): number {
  const u = Math.max(random(), Number.EPSILON);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/**
 * `--select fit`: refines the mix of `pool` (the best candidate first, whose loss on `examples` is
 * `startLoss`) by a (1+1) evolution strategy on softmax logits (zero-order, as LoraHub searches its
 * weights; no gradients, so any base model llama.cpp runs can be fitted). It accepts a step only
 * when the mean loss drops, so the result is never worse on the scored examples than the best
 * candidate. Step size follows the 1/5th success rule; the search is seeded, hence reproducible.
 */
export async function fitWeights({
  weigher,
  pool,
  startLoss,
  examples,
  trials = DEFAULT_FIT_TRIALS,
  seed = 0,
  signal,
  progress,
}: {
  weigher: WeightScorer;
  pool: readonly Candidate[];
  startLoss: number;
  examples: readonly ScoreExample[];
  trials?: number;
  seed?: number;
  signal?: AbortSignal;
  /** Told after each trial, with the trial's examples. */
  progress?: ProgressSink;
}): Promise<FitResult> {
  if (!(Number.isInteger(trials) && trials >= 1))
    throw usageError(`fit trials must be a positive integer, got ${trials}`);
  const best = pool[0];
  if (best === undefined) throw usageError("no scored candidate to start the fit from");
  const started = performance.now();
  const unfitted = {
    weights: best.weights,
    loss: startLoss,
    startLoss,
    examples: examples.length,
    failed: null,
  };
  if (pool.length < 2) return { ...unfitted, trials: 0, seconds: 0 };
  const parts = pool.map((c) => c.weights);
  const softmax = (logits: Float64Array) => {
    const max = Math.max(...logits);
    const e = Array.from(logits, (x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  };
  const combine = (shares: readonly number[]) => {
    const w = new Float64Array(best.weights.length);
    for (const [m, part] of parts.entries()) {
      const share = shares[m] as number;
      for (let j = 0; j < w.length; j++) w[j] = (w[j] as number) + share * (part[j] as number);
    }
    return w;
  };

  const random = seededRandom(seed);
  // Logit 4 on the best: ~89% of the weight with 8 candidates, so the first steps stay near it.
  let x = Float64Array.from(pool, (_, m) => (m === 0 ? 4 : 0));
  let { weights, loss } = unfitted;
  let failed = null as FitResult["failed"];
  let sigma = 1;
  for (let t = 0; t < trials; t++) {
    throwIfAborted(signal);
    const y = Float64Array.from(x, (v) => v + sigma * gaussian(random));
    const shares = softmax(y);
    const trial = await weigher.scoreBlend(parts, shares, examples, signal);
    if (trial.error !== undefined)
      failed = { count: (failed?.count ?? 0) + 1, first: failed?.first ?? trial.error };
    const l = meanLoss(trial.losses);
    if (l < loss) {
      x = y;
      weights = combine(shares);
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
  return {
    weights,
    loss,
    startLoss,
    trials,
    examples: examples.length,
    failed,
    seconds: (performance.now() - started) / 1000,
  };
}
