import { throwIfAborted, usageError } from "../errors.js";
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
 */
export function fitPrompt(prompt: string, tokenizer: Tokenizer, budget: number): string {
  const search = suffixSearch(prompt.length, budget);
  let step = search.next();
  while (!step.done)
    step = search.next(
      tokenizer.encode(prompt.slice(prompt.length - step.value), { bos: true }).length <= budget,
    );
  return prompt.slice(prompt.length - step.value);
}

/**
 * `fitPrompt` with a token count that takes a round trip (a server's /tokenize): the same search,
 * so a prompt is cut where a local tokenizer with the same vocabulary would cut it.
 */
export async function fitPromptBy(
  prompt: string,
  count: TokenCounter,
  budget: number,
  signal?: AbortSignal,
): Promise<string> {
  const search = suffixSearch(prompt.length, budget);
  let step = search.next();
  while (!step.done)
    step = search.next((await count(prompt.slice(prompt.length - step.value), signal)) <= budget);
  return prompt.slice(prompt.length - step.value);
}

/** Tokens of a text with BOS, as the model sees it. */
export type TokenCounter = (text: string, signal?: AbortSignal) => Promise<number>;

/**
 * The search behind fitPrompt: yields suffix lengths to try, is told whether each fits, and
 * returns the longest that fits. It grows a suffix from the end and then bisects, so it costs
 * O(log) encodes of budget-sized suffixes instead of encoding the whole prompt repeatedly.
 */
function* suffixSearch(length: number, budget: number): Generator<number, number, boolean> {
  // Suffix lengths: `good` fits, `bad` does not (or is past the whole prompt).
  let good = 0;
  let bad = Math.min(length, 4 * budget);
  while (yield bad) {
    if (bad === length) return length;
    good = bad;
    bad = Math.min(length, 2 * bad);
  }
  while (bad - good > 1) {
    const mid = (good + bad) >>> 1;
    if (yield mid) good = mid;
    else bad = mid;
  }
  return good;
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

/** `fitRecords` with a token count that takes a round trip (a server's /tokenize). */
export async function fitRecordsBy<R extends { input: string }>(
  records: readonly R[],
  count: TokenCounter,
  { context, answerTokens, signal }: { context: number; answerTokens: number; signal?: AbortSignal },
): Promise<{ records: R[]; cut: number }> {
  const budget = promptBudget(context, answerTokens);
  let cut = 0;
  const fitted: R[] = [];
  for (const r of records) {
    throwIfAborted(signal);
    const input = await fitPromptBy(r.input, count, budget, signal);
    if (input.length < r.input.length) cut++;
    fitted.push({ ...r, input });
  }
  return { records: fitted, cut };
}
