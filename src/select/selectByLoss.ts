import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import type { ProgressSink } from "../util/progress.js";
import type { Candidate } from "./candidates.js";
import { type FitOptions, type FitResult, fitWeights } from "./fitWeights.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";
import { WeightScorer } from "./scoreWeights.js";

export interface ScoredCandidate extends Candidate {
  /** Mean over the examples of the mean output cross-entropy (nats/token); NaN when scoring failed. */
  loss: number;
  seconds: number;
  /** Why scoring failed: reported, and the candidate is not chosen. */
  error?: string;
}

/** What `--select loss` (and `fit` on top of it) found, and the weights it chose. */
export interface LossSelection {
  scored: ScoredCandidate[];
  /** Index into `scored` of the lowest loss. */
  chosen: number;
  /** The base model's loss on the same examples: what "no adapter" would give. */
  baseLoss: number;
  /** The refinement of the best candidates' mix (select fit), when asked for. */
  fit?: FitResult;
  /** The chosen weights over the bank's adapters: the fit's, which never lose to the best candidate's. */
  weights: Float64Array;
  examples: number;
  /** Seconds spent scoring the candidates (the fit's are in `fit.seconds`). */
  seconds: number;
}

export interface SelectOptions {
  scorer: CandidateScorer;
  /** The bank's adapter directories, parallel to every candidate's weights. */
  adapters: readonly string[];
  candidates: readonly Candidate[];
  examples: readonly ScoreExample[];
  /** Refine the best candidates' mix on the same examples (`--select fit`); absent: `--select loss`. */
  fit?: FitOptions;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/**
 * The one selection path of generate, the demo and the benches: every candidate and the base
 * model scored on the same examples, the lowest loss kept (ties to the first listed), then, for
 * `--select fit`, its mix with the next best refined on the same loss. A candidate that fails to
 * score is reported and passed over; when all fail, the first one's reason is thrown.
 */
export async function selectByLoss({
  scorer,
  adapters,
  candidates,
  examples,
  fit,
  signal,
  progress,
}: SelectOptions): Promise<LossSelection> {
  if (candidates.length === 0) throw usageError("no candidates to score");
  if (examples.length === 0) throw usageError("no examples to score the candidates on");
  await using weigher = new WeightScorer(scorer, adapters);
  const started = performance.now();
  const total = candidates.length + 1;
  const tick = (done: number, detail: string) =>
    progress?.({ phase: "score", done, total, unit: "candidates", detail });
  tick(0, "base model");
  const baseLoss = await weigher.base(examples, signal);
  tick(1, "base model");
  const scored: ScoredCandidate[] = [];
  for (const [k, candidate] of candidates.entries()) {
    throwIfAborted(signal);
    const t = performance.now();
    const result = await weigher.score(candidate.weights, examples, signal);
    scored.push({ ...candidate, ...result, seconds: (performance.now() - t) / 1000 });
    tick(k + 2, candidate.label);
  }
  let chosen = -1;
  for (const [k, c] of scored.entries()) {
    if (Number.isFinite(c.loss) && (chosen < 0 || c.loss < (scored[chosen] as ScoredCandidate).loss))
      chosen = k;
  }
  if (chosen < 0) {
    throw new LoramixError(
      "BACKEND",
      `every candidate failed to score; the first: ${scored[0]?.label}: ${scored[0]?.error}`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const refined = fit ? await fitWeights({ ...fit, weigher, scored, examples, signal, progress }) : undefined;
  return {
    scored,
    chosen,
    baseLoss,
    ...(refined ? { fit: refined } : {}),
    weights: refined?.weights ?? (scored[chosen] as ScoredCandidate).weights,
    examples: examples.length,
    seconds,
  };
}
