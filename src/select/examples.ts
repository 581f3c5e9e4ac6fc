import type { DatasetRecord } from "../datasets/record.js";
import { usageError } from "../errors.js";
import { buildExample, type SequenceRule } from "../train/examples.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/** Train records scored per candidate by default (chosen on the bank, see testbed/TRAINING.md). */
export const DEFAULT_SCORE_EXAMPLES = 64;

/**
 * The first `count` records with an output, in split order (SPEC §7 candidate loss), built by
 * `loramix train`'s sequence rule with the scorer's tokenizer and end token (the prompt cut from
 * the left to fit `rule.context − rule.answerTokens`, the first output + EOS): a candidate is
 * judged on what training would have fitted.
 */
export function scoreExamples(
  records: readonly DatasetRecord[],
  scorer: Pick<CandidateScorer, "tokenizer" | "eosId">,
  rule: SequenceRule,
  count: number = DEFAULT_SCORE_EXAMPLES,
): ScoreExample[] {
  if (!(Number.isInteger(count) && count >= 1))
    throw usageError(`score examples must be a positive integer, got ${count}`);
  const out: ScoreExample[] = [];
  for (const record of records) {
    if (out.length === count) break;
    const e = buildExample(record, scorer.tokenizer, rule, scorer.eosId);
    if (e) out.push({ ids: e.ids, outputStart: e.outputStart });
  }
  return out;
}
