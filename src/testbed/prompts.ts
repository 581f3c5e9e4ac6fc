import type { DatasetRecord } from "../datasets/record.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";

/** TinyStories-656K's max_position_embeddings: positions beyond it were never trained. */
export const MODEL_CONTEXT = 512;

/**
 * The prompt cut from the left so that BOS + prompt fits in `budget` tokens. Super-NI prompts
 * (definition + 4 examples + the instance) run to 300–1500 tokens with this 2048-token vocabulary;
 * the end ("... Input: <instance> Output: ") is what a model that cannot read the definition can use.
 * Cut at a character offset found by bisection, so the kept text is the original's own suffix.
 */
export function fitPrompt(prompt: string, tokenizer: Tokenizer, budget: number): string {
  const fits = (start: number) => tokenizer.encode(prompt.slice(start), { bos: true }).length <= budget;
  if (fits(0)) return prompt;
  let lo = 1;
  let hi = prompt.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  return prompt.slice(lo);
}

/** Records with prompts that leave room for `maxNewTokens` in the model's context. */
export function fitRecords(
  records: DatasetRecord[],
  tokenizer: Tokenizer,
  { maxNewTokens, context = MODEL_CONTEXT }: { maxNewTokens: number; context?: number },
): DatasetRecord[] {
  return records.map((r) => ({ ...r, input: fitPrompt(r.input, tokenizer, context - maxNewTokens) }));
}
