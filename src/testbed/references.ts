import type { DatasetRecord } from "../datasets/record.js";
import type { InferenceBackend } from "../eval/backend.js";
import { evaluate } from "../eval/evaluate.js";
import type { Summary } from "../eval/metrics.js";
import { fitRecords } from "../tokenizers/fitPrompt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { SequenceRule } from "../train/examples.js";

/**
 * Test records evaluated per task, the generation cap, and the context of the context rule
 * (src/tokenizers/fitPrompt.ts): recorded beside every score.
 */
export interface EvalSettings {
  limit: number;
  maxNewTokens: number;
  context: number;
}

/**
 * The testbed's one context: adapters are trained on BOS + prompt ≤ 112 tokens + answer ≤ 16
 * (tfjs-wasm trains ~19x slower at the model's full 512 positions), and every score is taken on
 * the same prompt cut, so no model meets a prompt length it was not trained on.
 */
export const DEFAULT_EVAL: EvalSettings = { limit: 50, maxNewTokens: 16, context: 128 };

/** The testbed's training and scoring rule: its context, and as many answer tokens as it generates. */
export function testbedRule(s: EvalSettings): SequenceRule {
  return { context: s.context, answerTokens: s.maxNewTokens };
}

export interface Scored {
  rougeL: Summary;
  exactMatch: Summary;
  /** Per record, in test order (for per-task tables and significance by the reader). */
  perRecord: { rougeL: number[]; exactMatch: number[]; predictions: string[] };
}

/** The first `limit` test records with prompts fitted by the context rule. */
export function evalRecords(test: DatasetRecord[], tokenizer: Tokenizer, s: EvalSettings): DatasetRecord[] {
  return fitRecords(test.slice(0, s.limit), tokenizer, testbedRule(s)).records;
}

/** Greedy generation + Rouge-L / exact match (SPEC §6) of one backend on prepared records. */
export async function scoreBackend(
  backend: InferenceBackend,
  records: DatasetRecord[],
  s: EvalSettings,
  signal?: AbortSignal,
): Promise<Scored> {
  const { records: rows, metrics } = await evaluate({
    backend,
    dataset: records,
    maxNewTokens: s.maxNewTokens,
    truncate: "none", // evalRecords fitted them to s.context already
    signal,
  });
  return {
    rougeL: metrics.rougeL,
    exactMatch: metrics.exactMatch,
    perRecord: {
      rougeL: rows.map((r) => r.rougeL),
      exactMatch: rows.map((r) => r.exactMatch),
      predictions: rows.map((r) => r.prediction),
    },
  };
}
