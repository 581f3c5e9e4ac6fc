import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openDataset } from "../datasets/open.js";
import type { DatasetOptions, DatasetRecord, SplitName } from "../datasets/record.js";
import { inputError, option, throwIfAborted, usageError } from "../errors.js";
import { METRICS_FILE, PREDICTIONS_FILE } from "../formats/fileNames.js";
import { fitRecordsBy, type TokenCounter } from "../tokenizers/fitPrompt.js";
import { checkOutDir, writeDirAtomic } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import type { Generation, InferenceBackend } from "./backend.js";
import { cutAtEndText } from "./endText.js";
import { exactMatch, rougeLMax, type Summary, summarize } from "./metrics.js";

export interface EvaluateOptions {
  backend: InferenceBackend;
  /** A dataset path (its `split` is evaluated) or records (evaluated as given). */
  dataset: string | DatasetRecord[];
  datasetOptions?: DatasetOptions;
  split?: SplitName;
  /** Only the first `limit` records of the split. */
  limit?: number;
  /** SPEC §6 (paper: 256). */
  maxNewTokens?: number;
  /**
   * "left": prompts too long for the backend's context lose their beginning by the context rule
   * (src/tokenizers/fitPrompt.ts, the rule training uses); needs the backend's tokenizer (or a
   * server's token count) and context size. "none": prompts go as they are (a backend refuses one
   * that does not fit). Default: "left" when the backend knows both, else "none".
   */
  truncate?: "left" | "none";
  /** Records in flight at once; backends that run one at a time (llama.cpp) queue them. */
  concurrency?: number;
  /** When given, predictions.jsonl and metrics.json are written into this directory. */
  out?: string;
  /** What was evaluated, for metrics.json. */
  model?: string | null;
  adapter?: string | null;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface EvalRecord {
  id: string | null;
  /** Position in the evaluated split, so records without ids can be matched across runs. */
  index: number;
  input: string;
  references: string[];
  prediction: string;
  /** Tokens generated (as reported by the backend). */
  tokens: number;
  rougeL: number;
  exactMatch: number;
}

export interface EvalMetrics {
  model: string | null;
  adapter: string | null;
  backend: string;
  dataset: string | null;
  split: SplitName | null;
  n: number;
  maxNewTokens: number;
  truncate: "left" | "none";
  /** Prompts cut by the context rule (0 with truncate "none"). */
  promptsCut: number;
  /** The end token's text at which predictions were cut (END_TEXT_RULE), null when unknown. */
  endText: string | null;
  std: "population (ddof 0) over records";
  /** Rouge-L F (rouge_score, use_stemmer=True), max over references; mean and population std over records. */
  rougeL: Summary;
  exactMatch: Summary;
  generatedTokens: number;
  seconds: number;
  recordsPerSecond: number;
}

export interface EvalResult {
  records: EvalRecord[];
  metrics: EvalMetrics;
}

export { METRICS_FILE, PREDICTIONS_FILE };

/**
 * SPEC §6: greedy generation on each record's raw input, scored by Rouge-L and exact match
 * against its references. `out` follows the output-folder rule (checkOutDir) and is written only
once every record is done, as one atomic folder.
 */
export async function evaluate({
  backend,
  dataset,
  datasetOptions,
  split = "test",
  limit,
  maxNewTokens = 256,
  truncate,
  concurrency = 1,
  out,
  model = null,
  adapter = null,
  signal,
  progress,
}: EvaluateOptions): Promise<EvalResult> {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
    throw usageError(`limit must be a positive integer, got ${limit}`);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)
    throw usageError(`max new tokens must be a positive integer, got ${maxNewTokens}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw usageError(`concurrency must be a positive integer, got ${concurrency}`);
  if (out !== undefined) await checkOutDir(out, "eval");

  let records: DatasetRecord[];
  let datasetPath: string | null = null;
  if (typeof dataset === "string") {
    // Streamed: only the split's records are kept, and reading stops at `limit`, so a JSONL larger
    // than memory can be evaluated.
    const source = await openDataset(dataset, datasetOptions);
    datasetPath = source.path;
    records = [];
    for await (const { record, split: of } of source.records(signal)) {
      if (of !== split) continue;
      records.push(record);
      if (records.length === limit) break;
    }
    if (records.length === 0) throw inputError(source.path, `the ${split} split has no records`);
  } else {
    records = dataset;
    if (records.length === 0) throw usageError("no records to evaluate");
  }
  if (limit !== undefined) records = records.slice(0, limit);
  const { tokenizer, contextSize } = backend;
  const count: TokenCounter | undefined = tokenizer
    ? async (text) => tokenizer.encode(text, { bos: true }).length
    : backend.countTokens;
  const fit = truncate ?? (count !== undefined && contextSize !== undefined ? "left" : "none");
  let promptsCut = 0;
  if (fit === "left") {
    const none = option("truncate", "none");
    if (count === undefined) {
      const t = option("tokenizer");
      throw usageError(
        `${backend.name}: loramix does not know the model's tokenizer, so prompts cannot be fitted to the context: give ${t.text} (the model's tokenizer.json), or ${none.text}`,
        [t, none],
      );
    }
    if (contextSize === undefined) {
      const c = option("contextSize");
      throw usageError(
        `${backend.name} does not say its context size, so prompts cannot be fitted to it: give ${c.text} (the server's context in tokens), or ${none.text}`,
        [c, none],
      );
    }
    ({ records, cut: promptsCut } = await fitRecordsBy(records, count, {
      context: contextSize,
      answerTokens: maxNewTokens,
      signal,
    }));
  }
  const endText = backend.endText ?? null;

  const results: EvalRecord[] = new Array(records.length);
  const started = performance.now();
  let next = 0;
  let done = 0;
  const report = () => {
    const seconds = (performance.now() - started) / 1000;
    progress?.({
      phase: "eval",
      done,
      total: records.length,
      unit: "records",
      detail: `${seconds > 0 ? (done / seconds).toFixed(2) : "0.00"} records/s`,
    });
  };
  report();
  let failed = false;
  const worker = async () => {
    while (!failed && next < records.length) {
      throwIfAborted(signal);
      const index = next++;
      const record = records[index] as DatasetRecord;
      let generation: Generation;
      try {
        generation = await backend.generate(record.input, { maxNewTokens, signal });
      } catch (error) {
        // The other workers finish their current record and stop, so nothing runs after we return.
        failed = true;
        throw error;
      }
      const prediction = cutAtEndText(generation.text, endText, generation.stoppedBy);
      results[index] = {
        id: record.id ?? null,
        index,
        input: record.input,
        references: record.output,
        prediction,
        tokens: generation.tokens,
        rougeL: rougeLMax(prediction, record.output),
        exactMatch: exactMatch(prediction, record.output),
      };
      done++;
      report();
    }
  };
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, records.length) }, worker),
  );
  for (const s of settled) if (s.status === "rejected") throw s.reason;
  const seconds = (performance.now() - started) / 1000;

  let generatedTokens = 0;
  for (const r of results) generatedTokens += r.tokens;
  const metrics: EvalMetrics = {
    model,
    adapter,
    backend: backend.name,
    dataset: datasetPath,
    split: typeof dataset === "string" ? split : null,
    n: results.length,
    maxNewTokens,
    truncate: fit,
    promptsCut,
    endText,
    std: "population (ddof 0) over records",
    rougeL: summarize(results.map((r) => r.rougeL)),
    exactMatch: summarize(results.map((r) => r.exactMatch)),
    generatedTokens,
    seconds,
    recordsPerSecond: results.length / seconds,
  };
  if (out !== undefined) {
    throwIfAborted(signal);
    await writeDirAtomic(
      out,
      async (tmp) => {
        await writeFile(join(tmp, PREDICTIONS_FILE), results.map((r) => `${JSON.stringify(r)}\n`).join(""));
        await writeFile(join(tmp, METRICS_FILE), `${JSON.stringify(metrics, null, 2)}\n`);
      },
      "eval",
    );
  }
  return { records: results, metrics };
}
