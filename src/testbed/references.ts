import type { DatasetRecord } from "../datasets/record.js";
import type { InferenceBackend } from "../eval/backend.js";
import { evaluate } from "../eval/evaluate.js";
import type { Summary } from "../eval/metrics.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { fitRecords } from "./prompts.js";

/** Test records evaluated per task, the generation cap, and how prompts were cut: recorded beside every score. */
export interface EvalSettings {
  limit: number;
  maxNewTokens: number;
  context: number;
}

export const DEFAULT_EVAL: EvalSettings = { limit: 50, maxNewTokens: 16, context: 512 };

export interface Scored {
  rougeL: Summary;
  exactMatch: Summary;
  /** Per record, in test order (for per-task tables and significance by the reader). */
  perRecord: { rougeL: number[]; exactMatch: number[]; predictions: string[] };
}

/** The first `limit` test records with prompts cut to fit the model's context. */
export function evalRecords(test: DatasetRecord[], tokenizer: Tokenizer, s: EvalSettings): DatasetRecord[] {
  return fitRecords(test.slice(0, s.limit), tokenizer, { maxNewTokens: s.maxNewTokens, context: s.context });
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
