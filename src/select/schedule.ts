import { option, usageError } from "../errors.js";
import { type LlamaDims, MISTRAL_7B_DIMS, weightsPerToken } from "../formats/llamaConfig.js";
import { scoringTokens } from "./llamaScorer.js";
import type { ScoreExample } from "./scorer.js";

/** One round of successive halving: the `candidates` still in, each scored on its first `records` examples. */
export interface Stage {
  candidates: number;
  records: number;
}

/**
 * How selection and fit spend the budget, fixed before any scoring from the examples' token
 * counts (deterministic: the same data and budget give the same schedule), recorded in loramix.json.
 */
export interface Schedule {
  /** Tokens llama.cpp may evaluate; null: no limit (every candidate on every example). */
  budget: number | null;
  /** Rounds of successive halving; the base model is scored with the first. */
  stages: Stage[];
  /** The fit's trials, each scored on the final stage's records; null when none fit the budget. */
  fit: { trials: number; records: number } | null;
  /** Tokens the schedule evaluates: selection (base model included), then the fit. */
  tokens: { selection: number; fit: number };
}

export interface ScheduleOptions {
  /** Candidates to select from (the base model is scored besides). */
  candidates: number;
  /** Every example that may be scored, in split order. */
  examples: readonly ScoreExample[];
  budget: number | null;
  /** Fit trials at most; 0: no fit (select loss). */
  fitTrials: number;
  reusesPrefix: boolean;
  /** Share of the budget selection may take before the fit gets the rest. */
  selectionShare?: number;
}

/**
 * The share of the budget for successive halving; the fit gets the rest. Chosen with the budget
 * on the testbed's non-held-out valid splits (bench/budget.mjs, bench/RESULTS.md).
 */
export const SELECTION_SHARE = 0.5;

/**
 * Tokens llama.cpp evaluates for selection and fit by default on Mistral-7B (and wherever the
 * model's shape is unknown, as behind a server): the default generate took 685 s end to end on
 * two cores with a Mistral-7B-shaped GGUF (20,000 took 899 s, past what a user should wait). On
 * the testbed's 50 non-held-out valid splits 16,000 tokens kept the mix's Rouge-L of no budget
 * (0.327 against 0.324) but, fine-tuned, gave 0.541 against 0.550: a smaller model gets more
 * tokens for the same compute (`defaultBudget`). bench/budget.mjs, bench/finetune.mjs,
 * bench/big-model.mjs, bench/RESULTS.md.
 */
export const DEFAULT_BUDGET = 16_000;

/**
 * A budget above this many tokens is no budget: more than the defaults' schedule can spend
 * (12 candidates and 16 fit trials on 64 records of at most 512 tokens).
 */
const UNBOUNDED_BUDGET = (12 + 16) * 64 * 512;

/**
 * The default budget for a model of these shapes: DEFAULT_BUDGET's compute on Mistral-7B, as
 * tokens of this model (weights per token in inverse proportion), so the default takes about the
 * same minutes on a 1B or 7B model; null (no budget) for a model small enough that the whole
 * schedule costs less, as the testbed's; DEFAULT_BUDGET when the shapes are unknown. Fixed by the
 * model's header, never by the machine's speed, so that a run reproduces.
 */
export function defaultBudget(dims: LlamaDims | null): number | null {
  if (dims === null) return DEFAULT_BUDGET;
  const tokens = Math.round((DEFAULT_BUDGET * weightsPerToken(MISTRAL_7B_DIMS)) / weightsPerToken(dims));
  return tokens > UNBOUNDED_BUDGET ? null : Math.max(DEFAULT_BUDGET, tokens);
}

/** A budget is a positive whole number of tokens, or null for none. */
export function checkBudget(budget: number | null): void {
  if (budget !== null && !(Number.isSafeInteger(budget) && budget >= 1))
    throw usageError(`budget must be a positive whole number of tokens, got ${budget}`, [option("budget")]);
}

/** Fewer trials than this cannot move the fit's step size: the budget goes to selection instead. */
export const MIN_FIT_TRIALS = 4;

/**
 * Successive halving under a token budget: every candidate on the first n₀ examples, the better
 * half on twice as many, and so on while more than two remain and examples are left; n₀ is the
 * largest power of two whose rounds fit `selectionShare` of the budget. The fit then gets what is
 * left, in trials on the final round's examples. Without a budget: every candidate on every
 * example, then every fit trial (loramix's schedule before budgets).
 */
export function planSchedule({
  candidates,
  examples,
  budget,
  fitTrials,
  reusesPrefix,
  selectionShare = SELECTION_SHARE,
}: ScheduleOptions): Schedule {
  if (candidates < 1) throw usageError("no candidates to schedule");
  checkBudget(budget);
  const k = examples.length;
  if (k === 0) throw usageError("no examples to schedule");
  const cost = (from: number, to: number) => scoringTokens(examples.slice(from, to), reusesPrefix);
  const plan = (n0: number) => {
    const stages = halving(candidates, n0, k);
    let tokens = cost(0, n0);
    let prev = 0;
    for (const s of stages) {
      tokens += s.candidates * cost(prev, s.records);
      prev = s.records;
    }
    return { stages, tokens };
  };
  const withFit = (selection: { stages: Stage[]; tokens: number }, left: number | null): Schedule => {
    const records = (selection.stages.at(-1) as Stage).records;
    const trialTokens = cost(0, records);
    const trials = left === null ? fitTrials : Math.min(fitTrials, Math.floor(left / trialTokens));
    const fit = trials >= Math.min(MIN_FIT_TRIALS, fitTrials) && trials > 0 ? { trials, records } : null;
    return {
      budget,
      stages: selection.stages,
      fit,
      tokens: { selection: selection.tokens, fit: fit ? fit.trials * trialTokens : 0 },
    };
  };
  if (budget === null) return withFit(plan(k), null);
  const smallest = plan(1);
  if (smallest.tokens > budget) {
    throw usageError(
      `a budget of ${budget} tokens cannot score ${candidates} candidates and the base model on one example each; the smallest that works is ${smallest.tokens}`,
    );
  }
  let chosen = smallest;
  for (let n0 = 2; n0 < 2 * k; n0 *= 2) {
    const p = plan(Math.min(n0, k));
    if (p.tokens > selectionShare * budget) break;
    chosen = p;
  }
  return withFit(chosen, budget - chosen.tokens);
}

/** The rounds from n₀: the better half (rounded up) on twice the examples, until two remain or none are left. */
function halving(candidates: number, n0: number, k: number): Stage[] {
  const stages: Stage[] = [{ candidates, records: Math.min(n0, k) }];
  for (;;) {
    const last = stages.at(-1) as Stage;
    if (last.candidates <= 2 || last.records >= k) return stages;
    stages.push({ candidates: Math.ceil(last.candidates / 2), records: Math.min(2 * last.records, k) });
  }
}

/** The schedule in words: "11 candidates × 2 records → 6 × 4 → 3 × 8; fit 5 trials × 8 records; 19,840 of 20,000 tokens". */
export function describeSchedule(s: Schedule): string {
  const rounds = s.stages
    .map((st, i) =>
      i === 0 ? `${st.candidates} candidates × ${st.records} records` : `${st.candidates} × ${st.records}`,
    )
    .join(" → ");
  const fit = s.fit ? `; fit ${s.fit.trials} trials × ${s.fit.records} records` : "";
  const tokens = s.tokens.selection + s.tokens.fit;
  const of = s.budget === null ? "no budget" : `of ${s.budget.toLocaleString("en-US")}`;
  return `${rounds}${fit}; ${tokens.toLocaleString("en-US")} tokens (${of})`;
}
