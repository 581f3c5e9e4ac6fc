import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import type { ProgressSink } from "../util/progress.js";
import type { Candidate } from "./candidates.js";
import {
  DEFAULT_FIT_TOP,
  DEFAULT_FIT_TRIALS,
  type FitOptions,
  type FitResult,
  fitWeights,
} from "./fitWeights.js";
import { scoringTokens } from "./llamaScorer.js";
import { DEFAULT_BUDGET, planSchedule, type Schedule } from "./schedule.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";
import { meanLoss, WeightScorer } from "./scoreWeights.js";

export interface ScoredCandidate extends Candidate {
  /** Mean over its scored examples of the mean output cross-entropy (nats/token); NaN when scoring failed. */
  loss: number;
  /** Examples it was scored on: the later rounds of successive halving score the better ones on more. */
  examples: number;
  seconds: number;
  /** Why scoring failed: reported, and the candidate is not chosen. */
  error?: string;
}

/** What `--select loss` (and `fit` on top of it) found, and the weights it chose. */
export interface LossSelection {
  scored: ScoredCandidate[];
  /** Index into `scored` of the winner of the last round. */
  chosen: number;
  /** The base model's loss on the first round's examples: what "no adapter" would give. */
  baseLoss: number;
  /** The refinement of the best candidates' mix (select fit), when the schedule has room for it. */
  fit?: FitResult;
  /** The chosen weights over the bank's adapters: the fit's, which never lose to the best candidate's. */
  weights: Float64Array;
  schedule: Schedule;
  /** Tokens evaluated, as the schedule counts them. */
  tokens: number;
  /** Seconds spent scoring the candidates (the fit's are in `fit.seconds`). */
  seconds: number;
  /** Of the scoring and fitting: seconds mixing candidates and trials, and converting adapters. */
  overhead: { mix: number; convert: number };
}

/** The speed measured on the first scoring (the base model), and what the schedule will take at it. */
export interface SelectionEstimate {
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
}

export interface SelectOptions {
  scorer: CandidateScorer;
  /** The bank's adapter directories, parallel to every candidate's weights. */
  adapters: readonly string[];
  candidates: readonly Candidate[];
  /** Every example that may be scored, in split order. */
  examples: readonly ScoreExample[];
  /** Tokens llama.cpp may evaluate for selection and fit (default DEFAULT_BUDGET); null: every candidate on every example. */
  budget?: number | null;
  /** Refine the best candidates' mix on the same examples (`--select fit`); absent: `--select loss`. */
  fit?: FitOptions;
  signal?: AbortSignal;
  /** Progress in tokens over selection and fit. */
  progress?: ProgressSink;
  /** Told once, after the first scoring, how long the schedule should take. */
  onEstimate?: (estimate: SelectionEstimate) => void;
}

/**
 * The one selection path of generate, the demo and the benches: successive halving under the
 * budget (`planSchedule`: every candidate on a few examples, the better half on twice as many...),
 * the base model scored with the first round, the last round's lowest loss kept (ties to the first
 * listed), then, for `--select fit`, its mix with the next best refined on the last round's
 * examples with what is left. A candidate that fails to score is reported and dropped; when all
 * fail, the first one's reason is thrown.
 */
export async function selectByLoss({
  scorer,
  adapters,
  candidates,
  examples,
  budget = DEFAULT_BUDGET,
  fit,
  signal,
  progress,
  onEstimate,
}: SelectOptions): Promise<LossSelection> {
  if (candidates.length === 0) throw usageError("no candidates to score");
  if (examples.length === 0) throw usageError("no examples to score the candidates on");
  const schedule = planSchedule({
    candidates: candidates.length,
    examples,
    budget,
    fitTrials: fit ? (fit.trials ?? DEFAULT_FIT_TRIALS) : 0,
    reusesPrefix: scorer.reusesPrefix,
  });
  const total = schedule.tokens.selection + schedule.tokens.fit;
  let spent = 0;
  const spend = (tokens: number, detail: string) => {
    spent += tokens;
    progress?.({ phase: "select", done: spent, total, unit: "tokens", detail });
  };
  const cost = (from: number, to: number) => scoringTokens(examples.slice(from, to), scorer.reusesPrefix);
  await using weigher = new WeightScorer(scorer, adapters);
  const started = performance.now();
  const convertedBefore = scorer.convertSeconds ?? 0;

  const first = schedule.stages[0] as (typeof schedule.stages)[number];
  progress?.({ phase: "select", done: 0, total, unit: "tokens", detail: "base model" });
  const baseLoss = meanLoss(await weigher.losses(null, examples.slice(0, first.records), signal));
  spend(cost(0, first.records), "base model");
  const rate = spent / ((performance.now() - started) / 1000);
  onEstimate?.({ tokens: total, tokensPerSecond: rate, seconds: total / rate });

  const { scored, finalists } = await halve({
    weigher,
    candidates,
    examples,
    schedule,
    signal,
    spend: (from, to, label) => spend(cost(from, to), label),
  });
  const chosen = finalists[0];
  if (chosen === undefined) {
    throw new LoramixError(
      "BACKEND",
      `every candidate failed to score; the first: ${scored[0]?.label}: ${scored[0]?.error}`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const winner = scored[chosen] as ScoredCandidate;
  let refined: FitResult | undefined;
  if (fit && schedule.fit) {
    const { trials, records } = schedule.fit;
    const trialTokens = cost(0, records);
    const pool = fitPool(scored, finalists, fit.top ?? DEFAULT_FIT_TOP);
    refined = await fitWeights({
      weigher,
      pool,
      startLoss: winner.loss,
      examples: examples.slice(0, records),
      trials,
      ...(fit.seed === undefined ? {} : { seed: fit.seed }),
      signal,
      progress: (e) => spend(trialTokens, `fit trial ${e.done}/${e.total}, ${e.detail}`),
    });
  }
  return {
    scored,
    chosen,
    baseLoss,
    ...(refined ? { fit: refined } : {}),
    weights: refined?.weights ?? winner.weights,
    schedule,
    tokens: spent,
    seconds,
    overhead: { mix: weigher.mixSeconds, convert: (scorer.convertSeconds ?? 0) - convertedBefore },
  };
}

/**
 * Successive halving: each round scores its candidates on the records after the previous round's,
 * drops those that failed, and keeps the better part for the next (ties keep the candidate list's
 * order). Returns every candidate's result and the last round's survivors, best first.
 */
async function halve({
  weigher,
  candidates,
  examples,
  schedule,
  signal,
  spend,
}: {
  weigher: WeightScorer;
  candidates: readonly Candidate[];
  examples: readonly ScoreExample[];
  schedule: Schedule;
  signal: AbortSignal | undefined;
  /** Told after each scoring: the records it covered and the candidate's label. */
  spend: (from: number, to: number, label: string) => void;
}): Promise<{ scored: ScoredCandidate[]; finalists: number[] }> {
  const state = candidates.map((candidate) => ({
    candidate,
    losses: [] as number[],
    seconds: 0,
    error: undefined as string | undefined,
  }));
  const lossOf = (k: number) => meanLoss(Float64Array.from((state[k] as (typeof state)[number]).losses));
  let alive = state.map((_, k) => k);
  let prev = 0;
  for (const stage of schedule.stages) {
    alive = alive.slice(0, stage.candidates);
    for (const k of alive) {
      throwIfAborted(signal);
      const s = state[k] as (typeof state)[number];
      const t = performance.now();
      const result = await weigher.score(s.candidate.weights, examples.slice(prev, stage.records), signal);
      s.seconds += (performance.now() - t) / 1000;
      if (result.error !== undefined) s.error = result.error;
      else s.losses.push(...result.losses);
      spend(prev, stage.records, s.candidate.label);
    }
    alive = alive.filter((k) => state[k]?.error === undefined);
    if (alive.length === 0) break;
    alive.sort((a, b) => lossOf(a) - lossOf(b) || a - b);
    prev = stage.records;
  }
  const scored = state.map((s, k) => ({
    ...s.candidate,
    loss: s.error === undefined ? lossOf(k) : Number.NaN,
    examples: s.losses.length,
    seconds: s.seconds,
    ...(s.error === undefined ? {} : { error: s.error }),
  }));
  return { scored, finalists: alive };
}

/**
 * The fit's candidates, best first: the last round's survivors by loss, then those dropped in
 * later rounds before those dropped earlier (each round's by loss): the order halving ranked them.
 */
function fitPool(
  scored: readonly ScoredCandidate[],
  finalists: readonly number[],
  top: number,
): ScoredCandidate[] {
  const rest = scored
    .map((c, k) => ({ c, k }))
    .filter(({ c, k }) => !finalists.includes(k) && c.error === undefined)
    .sort((a, b) => b.c.examples - a.c.examples || a.c.loss - b.c.loss || a.k - b.k);
  return [...finalists.map((k) => scored[k] as ScoredCandidate), ...rest.map(({ c }) => c)].slice(0, top);
}
