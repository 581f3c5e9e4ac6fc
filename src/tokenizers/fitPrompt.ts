import { usageError } from "../errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * The one context rule of loramix, shared by training, candidate scoring and evaluation, so that a
 * model never meets at test time a prompt length it was not trained on:
 * a model with a context of `context` tokens and an answer budget of `answerTokens` (the tokens
 * generated at most, or the output tokens kept in training, end token included) sees at most
 * `context − answerTokens` prompt tokens, BOS included; a longer prompt loses its beginning.
 */
export function promptBudget(context: number, answerTokens: number): number {
  const budget = context - answerTokens;
  if (!(Number.isInteger(budget) && budget >= 2)) {
    throw usageError(
      `a context of ${context} tokens leaves no room for the prompt after ${answerTokens} answer tokens`,
    );
  }
  return budget;
}

/** The rule in words, for --help texts and the records loramix writes beside its results. */
export function contextRuleText(context: number, answerTokens: number): string {
  return (
    `prompt cut from the left (at a character, so it stays the original text's suffix) until BOS + prompt ` +
    `fits ${context} − ${answerTokens} = ${context - answerTokens} tokens; the answer gets the remaining ${answerTokens}`
  );
}

/**
 * The longest suffix of `prompt` whose tokens (with BOS) fit in `budget`. Super-NI prompts put the
 * instance and its "Output:" cue at the end, which is what a small model can use. The cut is made
 * on characters so that every backend, given the text, sees the same ids as training did.
 * Costs O(log) encodes of budget-sized suffixes: the search grows a suffix from the end instead of
 * encoding the whole prompt repeatedly.
 */
export function fitPrompt(prompt: string, tokenizer: Tokenizer, budget: number): string {
  const fits = (start: number) => tokenizer.encode(prompt.slice(start), { bos: true }).length <= budget;
  // Suffix lengths: `good` fits, `bad` does not (or is past the whole prompt).
  let good = 0;
  let bad = Math.min(prompt.length, 4 * budget);
  while (fits(prompt.length - bad)) {
    if (bad === prompt.length) return prompt;
    good = bad;
    bad = Math.min(prompt.length, 2 * bad);
  }
  while (bad - good > 1) {
    const mid = (good + bad) >>> 1;
    if (fits(prompt.length - mid)) good = mid;
    else bad = mid;
  }
  return prompt.slice(prompt.length - good);
}

/** Records with prompts fitted by the context rule, and how many of them were cut. */
export function fitRecords<R extends { input: string }>(
  records: readonly R[],
  tokenizer: Tokenizer,
  { context, answerTokens }: { context: number; answerTokens: number },
): { records: R[]; cut: number } {
  const budget = promptBudget(context, answerTokens);
  let cut = 0;
  const fitted = records.map((r) => {
    const input = fitPrompt(r.input, tokenizer, budget);
    if (input.length < r.input.length) cut++;
    return { ...r, input };
  });
  return { records: fitted, cut };
}
