import { resolve } from "node:path";
import { defineCommand } from "citty";
import type { SplitName } from "../../datasets/load.js";
import { usageError } from "../../errors.js";
import { BACKEND_KINDS, type BackendKind, openBackend } from "../../eval/backends.js";
import { evaluate, METRICS_FILE, PREDICTIONS_FILE } from "../../eval/evaluate.js";
import { checkOutDir } from "../../util/atomic.js";
import { createProgress, info, interrupt, printJson, printResult } from "../context.js";
import { apiKeyFrom, JSON_OPTION, positiveInt, SERVER_OPTIONS, timeoutMs } from "../options.js";

const SPLITS: readonly SplitName[] = ["train", "valid", "test"];

export default defineCommand({
  meta: {
    name: "eval",
    description: "Generate on a dataset split and score Rouge-L and exact match (SPEC §6).",
  },
  args: {
    ...JSON_OPTION,
    model: {
      type: "string",
      description: "Base model: Hugging Face Llama directory or .gguf (llama backend)",
    },
    adapter: {
      type: "string",
      description: "LoRA: PEFT directory or LoRA .gguf (its name is the served name for openai)",
    },
    data: { type: "string", required: true, description: "Dataset file or directory" },
    split: { type: "string", default: "test", description: "train | valid | test" },
    limit: { type: "string", description: "Only the first N records of the split" },
    "max-new-tokens": {
      type: "string",
      default: "256",
      description: "Tokens to generate at most per record",
    },
    backend: {
      type: "string",
      default: "llama",
      description: "llama (node-llama-cpp, CPU) | openai (a server)",
    },
    tokenizer: {
      type: "string",
      description:
        "The model's tokenizer.json (or mistral): a .gguf model uses its own vocabulary unless it has no byte pieces; with a server, to fit prompts and cut predictions as llama.cpp does (else the server's /tokenize, where it has one)",
    },
    threads: { type: "string", description: "CPU threads for llama.cpp (default: every core)" },
    "context-size": {
      type: "string",
      description:
        "Tokens per context: llama.cpp's (default: the model's trained context, e.g. config.json max_position_embeddings) or the server's (default: what its /props or /v1/models says)",
    },
    truncate: {
      type: "string",
      default: "left",
      description:
        "left: a prompt longer than the context minus --max-new-tokens loses its beginning, cut at a character (the rule train and the testbed use; a server needs --tokenizer or its own /tokenize, and --context-size unless it says its context) | none: prompts go as they are",
    },
    "base-url": { type: "string", description: "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1" },
    "model-name": {
      type: "string",
      description: "Served model name (default: the adapter's folder name); vLLM routes LoRAs by it",
    },
    "lora-id": {
      type: "string",
      description:
        "llama-server: apply the loaded adapter N (GET /lora-adapters) at SCALE (default 1) to every request, as N[:SCALE]; comma-separate several",
    },
    "prompt-ids": {
      type: "boolean",
      description:
        "Send prompts as token ids (BOS + --tokenizer's ids): the server tokenizes nothing, so every backend sees the same ids",
    },
    "extra-body": {
      type: "string",
      description: "JSON object merged into every request (other servers' fields)",
    },
    ...SERVER_OPTIONS,
    concurrency: { type: "string", description: "Requests in flight (default 1 for llama, 4 for openai)" },
    out: {
      type: "string",
      required: true,
      description: `Directory for ${PREDICTIONS_FILE} and ${METRICS_FILE}`,
    },
  },
  async run({ args }) {
    const kind = args.backend as BackendKind;
    if (!BACKEND_KINDS.includes(kind))
      throw usageError(`--backend must be one of ${BACKEND_KINDS.join(", ")}, got "${args.backend}"`);
    const split = args.split as SplitName;
    if (!SPLITS.includes(split))
      throw usageError(`--split must be one of ${SPLITS.join(", ")}, got "${args.split}"`);
    const truncate = args.truncate as "left" | "none";
    if (truncate !== "left" && truncate !== "none")
      throw usageError(`--truncate must be left or none, got "${args.truncate}"`);
    const concurrency = positiveInt("concurrency", args.concurrency) ?? (kind === "openai" ? 4 : 1);
    // Before the model loads: --out follows generate's rule (a new, empty or earlier eval folder).
    await checkOutDir(resolve(args.out), "eval");
    const backend = await openBackend({
      kind,
      model: args.model,
      adapter: args.adapter,
      tokenizer: args.tokenizer,
      threads: positiveInt("threads", args.threads),
      contextSize: positiveInt("context-size", args["context-size"]),
      warn: info,
      baseUrl: args["base-url"],
      modelName: args["model-name"],
      apiKey: kind === "openai" ? apiKeyFrom(args["api-key-env"]) : undefined,
      timeoutMs: timeoutMs(args.timeout),
      concurrency,
      lora: loraIds(args["lora-id"]),
      promptIds: args["prompt-ids"] === true,
      extraBody: extraBody(args["extra-body"]),
      signal: interrupt.signal,
    });
    const progress = createProgress();
    try {
      const { metrics } = await evaluate({
        backend,
        dataset: args.data,
        split,
        limit: positiveInt("limit", args.limit),
        maxNewTokens: positiveInt("max-new-tokens", args["max-new-tokens"]),
        truncate,
        concurrency,
        out: args.out,
        model: args.model === undefined ? null : resolve(args.model),
        adapter: args.adapter === undefined ? null : resolve(args.adapter),
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const files = {
        predictions: resolve(args.out, PREDICTIONS_FILE),
        metrics: resolve(args.out, METRICS_FILE),
      };
      if (args.json) {
        printJson({ ...metrics, files });
        return;
      }
      printResult(
        `${backend.name} on ${metrics.n} ${split} records: Rouge-L ${metrics.rougeL.mean.toFixed(4)} ± ${metrics.rougeL.std.toFixed(4)}, ` +
          `exact match ${metrics.exactMatch.mean.toFixed(4)} ± ${metrics.exactMatch.std.toFixed(4)} (population std), ` +
          `${metrics.recordsPerSecond.toFixed(2)} records/s, ${metrics.seconds.toFixed(1)} s`,
      );
      if (metrics.promptsCut > 0)
        info(
          `${metrics.promptsCut} of ${metrics.n} prompts were cut from the left to fit ${backend.contextSize} tokens`,
        );
      info(`wrote ${files.predictions} and ${METRICS_FILE}`);
    } finally {
      progress.stop();
      await backend.dispose();
    }
  },
});

/** "0", "0:0.5,1:1.2" → llama-server's per-request `lora` list. */
function loraIds(value: string | undefined): { id: number; scale: number }[] | undefined {
  if (value === undefined) return undefined;
  return value.split(",").map((item) => {
    const [id, scale = "1", extra] = item.trim().split(":");
    const n = Number(id);
    const s = Number(scale);
    if (
      extra !== undefined ||
      id === undefined ||
      id === "" ||
      !Number.isInteger(n) ||
      n < 0 ||
      scale === "" ||
      !Number.isFinite(s)
    )
      throw usageError(
        `--lora-id must be N or N:SCALE (N a non-negative integer), comma-separated; got "${value}"`,
      );
    return { id: n, scale: s };
  });
}

function extraBody(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw usageError(`--extra-body must be a JSON object, got "${value}"`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw usageError(`--extra-body must be a JSON object, got "${value}"`);
  return parsed as Record<string, unknown>;
}
