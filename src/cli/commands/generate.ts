import { resolve } from "node:path";
import { defineCommand } from "citty";
import { METRICS, type Metric } from "../../distances/metric.js";
import { usageError } from "../../errors.js";
import {
  type GenerateOptions,
  type GenerateResult,
  generateAdapter,
} from "../../generate/generateAdapter.js";
import { MIX_MODES, type MixMode } from "../../merge/mixAdapters.js";
import { DEFAULT_NEAREST, MIXTURE_TEMPERATURES } from "../../select/candidates.js";
import { DEFAULT_SCORE_EXAMPLES } from "../../select/examples.js";
import { DEFAULT_FIT_TOP, DEFAULT_FIT_TRIALS } from "../../select/fitWeights.js";
import { DEFAULT_BUDGET, describeSchedule } from "../../select/schedule.js";
import { DEFAULT_RULE } from "../../train/examples.js";
import { DEFAULT_FINETUNE_STEPS } from "../../train/finetuneLora.js";
import { roughDuration } from "../../util/duration.js";
import { WEIGHT_METHODS, type WeightMethod } from "../../weights/methods.js";
import { createProgress, info, interrupt, printJson, printResult } from "../context.js";
import {
  apiKeyFrom,
  integerAtLeast,
  JSON_OPTION,
  oneOf,
  optionalNumber,
  positiveInt,
  SERVER_OPTIONS,
  SIDE_ARG,
  sideOption,
  timeoutMs,
} from "../options.js";

/** Rows of the contributor table; loramix.json has every candidate. */
const SHOWN = 10;

export default defineCommand({
  meta: {
    name: "generate",
    description: "Mix the bank's adapters into a LoRA adapter for a new dataset (SPEC §2-5)",
  },
  args: {
    ...JSON_OPTION,
    bank: { type: "positional", description: "Bank directory", required: true },
    data: {
      type: "string",
      required: true,
      description:
        "Target dataset (Super-NI JSON, JSONL, JSON, Parquet, dataset dir) or a profile.json of the bank's tokenizer",
    },
    metric: { type: "string", default: "js", description: "Distance: kl, js, wd or mmd" },
    select: {
      type: "string",
      description: `fit (default without --method): score the nearest adapters and a few mixtures on the dataset's train records with --model, then refine the mix of the best ${DEFAULT_FIT_TOP} on the same loss (${DEFAULT_FIT_TRIALS} trials); loss: keep the lowest-loss candidate as it is; method: the paper's weighting (--method) over the whole bank`,
    },
    model: {
      type: "string",
      description:
        "Base model (GGUF or Hugging Face dir) llama.cpp scores candidates with (--select fit/loss); without it, the nearest adapter is taken",
    },
    tokenizer: {
      type: "string",
      description:
        "tokenizer.json of a .gguf --model (default: the GGUF's own vocabulary, or the bank's tokenizer when that vocabulary has no byte pieces)",
    },
    "score-url": {
      type: "string",
      description:
        "Score candidates on this OpenAI-compatible server instead of llama.cpp (vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, e.g. http://127.0.0.1:8000/v1)",
    },
    "score-model": { type: "string", description: "The base model's served name on --score-url" },
    ...SERVER_OPTIONS,
    candidates: {
      type: "string",
      default: String(DEFAULT_NEAREST),
      description: `Nearest single adapters scored, besides the mixtures at τ = ${MIXTURE_TEMPERATURES.join(", ")} (--select fit/loss)`,
    },
    "score-examples": {
      type: "string",
      default: String(DEFAULT_SCORE_EXAMPLES),
      description: "Train records a candidate may be scored on at most (--select fit/loss)",
    },
    budget: {
      type: "string",
      description: `Tokens llama.cpp may evaluate to select and fit (--select fit/loss), spent by successive halving: every candidate on a few records, the better half on twice as many..., the fit on the rest (default: ${DEFAULT_BUDGET} for Mistral-7B or an unknown model, as many more as a smaller model's tokens are cheaper, no limit for a tiny one); 'all': every candidate on every record`,
    },
    finetune: {
      type: "string",
      description: `Training steps that fine-tune the chosen mix on the train records (--select fit/loss; default ${DEFAULT_FINETUNE_STEPS} when --model is a Hugging Face Llama directory the CPU trainer runs, else none; 0: keep the mix as it is)`,
    },
    context: {
      type: "string",
      description: `Tokens per scored and fine-tuned sequence, loramix train's rule (default ${DEFAULT_RULE.context}, capped by the model's context)`,
    },
    "answer-tokens": {
      type: "string",
      default: String(DEFAULT_RULE.answerTokens),
      description: "Output tokens kept per scored sequence, end token included",
    },
    side: {
      ...SIDE_ARG,
      default: undefined,
      description: `${SIDE_ARG.description} (default: output for --select fit/loss, both for --method)`,
    },
    method: {
      type: "string",
      description: "Weighting of --select method: attentional, normalized (default) or neural",
    },
    merge: { type: "string", default: "linear", description: "Mix mode: linear (paper), delta-svd or cat" },
    "top-k": { type: "string", description: "Keep the K largest weights (renormalised)" },
    "min-weight": { type: "string", description: "Drop weights below W (renormalised)" },
    temperature: {
      type: "string",
      default: "1",
      description: "Softmin temperature (attentional, normalized)",
    },
    mmd: { type: "string", default: "exact", description: "MMD estimator: exact or sampled" },
    out: { type: "string", required: true, description: "Output adapter directory (replaced atomically)" },
    threads: { type: "string", description: "Threads for tokenizing and llama.cpp (default: every core)" },
    "input-field": { type: "string", description: "Field holding the input (JSONL/JSON/Parquet)" },
    "output-field": { type: "string", description: "Field holding the output(s)" },
    "id-field": { type: "string", description: "Field holding the record id" },
  },
  async run({ args }) {
    const metric: Metric = oneOf("metric", args.metric, METRICS);
    const method: WeightMethod | undefined =
      args.method === undefined ? undefined : oneOf("method", args.method, WEIGHT_METHODS);
    const select = oneOf("select", args.select ?? (method === undefined ? "fit" : "method"), [
      "loss",
      "fit",
      "method",
    ] as const);
    const merge: MixMode = oneOf("merge", args.merge, MIX_MODES);
    const mmd = oneOf("mmd", args.mmd, ["exact", "sampled"] as const);
    const topK = optionalNumber(
      "top-k",
      args["top-k"],
      (n) => Number.isInteger(n) && n >= 1,
      "a positive integer",
    );
    const minWeight = optionalNumber(
      "min-weight",
      args["min-weight"],
      (n) => n >= 0 && n <= 1,
      "between 0 and 1",
    );
    const temperature =
      optionalNumber(
        "temperature",
        args.temperature,
        (n) => n > 0 && Number.isFinite(n),
        "a positive number",
      ) ?? 1;
    const threads = optionalNumber(
      "threads",
      args.threads,
      (n) => Number.isInteger(n) && n >= 1,
      "a positive integer",
    );
    const progress = createProgress();
    const started = performance.now();
    try {
      const result = await generateAdapter(args.bank, {
        data: args.data,
        dataOptions: {
          inputField: args["input-field"],
          outputField: args["output-field"],
          idField: args["id-field"],
        },
        metric,
        select,
        ...(args.side === undefined ? {} : { side: sideOption(args.side) }),
        ...(method === undefined ? {} : { method }),
        model: args.model,
        tokenizer: args.tokenizer,
        scoreServer: scoreServer(args["score-url"], args["score-model"], args["api-key-env"], args.timeout),
        nearest: positiveInt("candidates", args.candidates),
        scoreExamples: positiveInt("score-examples", args["score-examples"]),
        ...(args.budget === undefined
          ? {}
          : { budget: args.budget === "all" ? null : positiveInt("budget", args.budget) }),
        onEstimate: (e) =>
          info(
            `estimate: ${e.tokens.toLocaleString("en-US")} tokens to score at ${e.tokensPerSecond.toFixed(0)} tokens/s (measured on the base model): about ${roughDuration(e.seconds)}`,
          ),
        finetune: integerAtLeast("finetune", args.finetune, 0),
        context: positiveInt("context", args.context),
        answerTokens: positiveInt("answer-tokens", args["answer-tokens"]),
        merge,
        topK,
        minWeight,
        temperature,
        mmd,
        out: resolve(args.out),
        threads,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      if (args.json) printJson(result);
      else printTables(result, merge, (performance.now() - started) / 1000);
      if (result.flatness.warning) info(`warning: ${result.flatness.warning}`);
      for (const note of result.notes) info(`note: ${note}`);
      if (result.synthetic)
        info("note: the bank's adapters are synthetic (loramix synth-bank); so is this adapter");
      info(`adapter written to ${result.out}`);
    } finally {
      progress.stop();
    }
  },
});

function scoreServer(
  baseUrl: string | undefined,
  model: string | undefined,
  apiKeyEnv: string | undefined,
  timeout: string | undefined,
): GenerateOptions["scoreServer"] {
  if (baseUrl === undefined && model === undefined) {
    if (apiKeyEnv !== undefined || timeout !== undefined)
      throw usageError("--api-key-env and --timeout are for the --score-url server");
    return undefined;
  }
  if (baseUrl === undefined || model === undefined)
    throw usageError(
      "--score-url and --score-model go together (the server and its base model's served name)",
    );
  const apiKey = apiKeyFrom(apiKeyEnv);
  return { baseUrl, model, ...(apiKey ? { apiKey } : {}), timeoutMs: timeoutMs(timeout), warn: info };
}

/** The candidates' losses, the weights and the summary: the result, on stdout. */
function printTables(result: GenerateResult, merge: MixMode, totalSeconds: number): void {
  if (result.selection) {
    const sel = result.selection;
    const width = Math.max(9, ...sel.scored.map((c) => c.label.length));
    const first = sel.schedule.stages[0]?.records ?? 0;
    printResult(`${"candidate".padEnd(width)}  ${"loss".padStart(8)}  records  ${"seconds".padStart(7)}`);
    printResult(
      `${"base model".padEnd(width)}  ${sel.baseLoss.toFixed(4).padStart(8)}  ${String(first).padStart(7)}`,
    );
    for (const [k, c] of sel.scored.entries()) {
      const loss = Number.isFinite(c.loss) ? c.loss.toFixed(4) : "failed";
      printResult(
        `${c.label.padEnd(width)}  ${loss.padStart(8)}  ${String(c.examples).padStart(7)}  ${c.seconds.toFixed(2).padStart(7)}${k === sel.chosen ? "  <- chosen" : ""}`,
      );
    }
    const rate = sel.tokens / (sel.seconds + (sel.fit?.seconds ?? 0));
    printResult(
      `schedule: ${describeSchedule(sel.schedule)}; ${(sel.seconds + (sel.fit?.seconds ?? 0)).toFixed(1)} s, ${rate.toFixed(0)} tokens/s`,
    );
  }
  const shown = result.weights.slice(0, SHOWN);
  const width = Math.max(2, ...shown.map((w) => w.id.length));
  printResult(`${"id".padEnd(width)}  ${"weight".padStart(10)}  ${"distance".padStart(12)}`);
  for (const w of shown) {
    printResult(
      `${w.id.padEnd(width)}  ${w.weight.toFixed(6).padStart(10)}  ${w.distance.toPrecision(6).padStart(12)}`,
    );
  }
  if (result.weights.length > SHOWN)
    printResult(`... ${result.weights.length - SHOWN} more candidates in loramix.json`);
  const t = result.timings;
  printResult(
    `target: ${result.target.records} train records${result.target.datasetRecords === null ? "" : ` (of ${result.target.datasetRecords})`}, ${result.target.tokens} tokens (${result.target.kind}); ` +
      `mixed ${result.mix.used} of ${result.weights.length} adapters (${merge}, rank ${result.mix.rank})`,
  );
  printResult(
    `time: profile ${t.profile.toFixed(2)} s, distances ${t.distances.toFixed(2)} s, select ${t.select.toFixed(2)} s` +
      (t.selection
        ? ` (load model ${t.selection.load.toFixed(1)} s, score ${t.selection.score.toFixed(1)} s, fit ${t.selection.fit.toFixed(1)} s; within them mixing candidates ${t.selection.mixCandidates.toFixed(1)} s, converting to GGUF ${t.selection.convert.toFixed(1)} s)`
        : "") +
      ", " +
      `mix ${t.mix.toFixed(2)} s${result.finetune ? `, fine-tune ${t.finetune.toFixed(2)} s` : ""}; total ${totalSeconds.toFixed(2)} s`,
  );
  if (result.finetune) {
    const r = result.finetune;
    printResult(
      `fine-tuned: ${r.steps} steps × ${r.batchSize} on ${r.examples} train records, batch loss ${r.firstLoss.toFixed(4)} → ${r.finalLoss.toFixed(4)}, ${r.seconds.toFixed(1)} s`,
    );
  }
  const { updateNorm, updateNormSkipped } = result.flatness;
  printResult(
    `effective adapters (1/Σw²): ${result.flatness.effective.toFixed(2)}; update norm ratio: ${updateNorm === null ? `not computed (${updateNormSkipped})` : updateNorm.toFixed(3)}`,
  );
}
