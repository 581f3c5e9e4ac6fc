import { defineCommand } from "citty";
import { METRICS, type Metric } from "../../distances/metric.js";
import { generateAdapter } from "../../generate/generateAdapter.js";
import { MIX_MODES, type MixMode } from "../../merge/mixAdapters.js";
import type { WeightMethod } from "../../weights/leaveOneOut.js";
import { createProgress, info, interrupt } from "../context.js";
import { oneOf, optionalNumber } from "../options.js";

const METHODS = ["attentional", "normalized", "neural"] as const;
/** Rows of the contributor table; loramix.json has every candidate. */
const SHOWN = 10;

export default defineCommand({
  meta: {
    name: "generate",
    description: "Mix the bank's adapters into a LoRA adapter for a new dataset (SPEC §2-5)",
  },
  args: {
    bank: { type: "positional", description: "Bank directory", required: true },
    data: {
      type: "string",
      required: true,
      description:
        "Target dataset (Super-NI JSON, JSONL, JSON, Parquet, dataset dir) or a profile.json of the bank's tokenizer",
    },
    metric: { type: "string", default: "js", description: "Distance: kl, js, wd or mmd" },
    method: {
      type: "string",
      default: "normalized",
      description: "Weighting: attentional, normalized or neural",
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
    threads: { type: "string", description: "Tokenizer worker threads" },
    "input-field": { type: "string", description: "Field holding the input (JSONL/JSON/Parquet)" },
    "output-field": { type: "string", description: "Field holding the output(s)" },
    "id-field": { type: "string", description: "Field holding the record id" },
  },
  async run({ args }) {
    const metric: Metric = oneOf("metric", args.metric, METRICS);
    const method: WeightMethod = oneOf("method", args.method, METHODS);
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
      const result = await generateAdapter({
        bank: args.bank,
        data: args.data,
        dataOptions: {
          inputField: args["input-field"],
          outputField: args["output-field"],
          idField: args["id-field"],
        },
        metric,
        method,
        merge,
        topK,
        minWeight,
        temperature,
        mmd,
        out: args.out,
        threads,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const shown = result.weights.slice(0, SHOWN);
      const width = Math.max(2, ...shown.map((w) => w.id.length));
      info(`${"id".padEnd(width)}  ${"weight".padStart(10)}  ${"distance".padStart(12)}`);
      for (const w of shown) {
        info(
          `${w.id.padEnd(width)}  ${w.weight.toFixed(6).padStart(10)}  ${w.distance.toPrecision(6).padStart(12)}`,
        );
      }
      if (result.weights.length > SHOWN)
        info(`... ${result.weights.length - SHOWN} more candidates in loramix.json`);
      const t = result.timings;
      info(
        `target: ${result.target.records} records, ${result.target.tokens} tokens (${result.target.kind}); ` +
          `mixed ${result.mix.used} of ${result.weights.length} adapters (${merge}, rank ${result.mix.rank})`,
      );
      info(
        `time: profile ${t.profile.toFixed(2)} s, distances ${t.distances.toFixed(2)} s, weights ${t.weights.toFixed(3)} s, ` +
          `mix ${t.mix.toFixed(2)} s; total ${((performance.now() - started) / 1000).toFixed(2)} s`,
      );
      if (result.synthetic)
        info("note: the bank's adapters are synthetic (loramix synth-bank); so is this adapter");
      info(`adapter written to ${result.out}`);
    } finally {
      progress.stop();
    }
  },
});
