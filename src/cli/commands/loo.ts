import { defineCommand } from "citty";
import { Bank } from "../../bank/store.js";
import { METRICS, type Metric } from "../../distances/metric.js";
import { runLoo } from "../../loo/runLoo.js";
import { MIX_MODES, type MixMode } from "../../merge/mixAdapters.js";
import { WEIGHT_METHODS, type WeightMethod } from "../../weights/methods.js";
import { createProgress, info, interrupt, printJson, printResult } from "../context.js";
import { JSON_OPTION, listOf, positiveInt, SIDE_ARG, sideOption } from "../options.js";

export default defineCommand({
  meta: {
    name: "loo",
    description:
      "Leave-one-out over a bank: predict each entry's adapter from the others and compare (SPEC §6)",
  },
  args: {
    ...JSON_OPTION,
    bank: { type: "positional", description: "Bank directory", required: true },
    metric: { type: "string", default: "js", description: 'Distances: "all" or e.g. kl,js' },
    side: SIDE_ARG,
    method: {
      type: "string",
      default: "normalized",
      description: 'Weightings: "all" or e.g. attentional,normalized',
    },
    merge: { type: "string", default: "all", description: 'Mix modes: "all" or e.g. linear,cat' },
    "top-k": { type: "string", description: "Keep the K largest weights of every row for every number" },
    "delta-top-k": {
      type: "string",
      default: "32",
      description: "Weights per row for the ΔW numbers of linear and cat",
    },
    "svd-top-k": { type: "string", default: "8", description: "Weights per row for delta-svd" },
    entries: {
      type: "string",
      description: "Evaluate only the first N entries with an adapter (bank order) as targets",
    },
    out: { type: "string", required: true, description: "Output directory (replaced atomically)" },
    threads: { type: "string", description: "Worker threads for the Gram matrix" },
  },
  async run({ args }) {
    const metrics: Metric[] = listOf("metric", args.metric, METRICS);
    const methods: WeightMethod[] = listOf("method", args.method, WEIGHT_METHODS);
    const merges: MixMode[] = listOf("merge", args.merge, MIX_MODES);
    const count = positiveInt("entries", args.entries);
    const progress = createProgress();
    const bank = await Bank.open(args.bank);
    try {
      const entries =
        count === undefined
          ? undefined
          : bank
              .entries()
              .filter((e) => e.adapterPath !== null)
              .slice(0, count)
              .map((e) => e.id);
      const result = await runLoo(bank, {
        metrics,
        side: sideOption(args.side),
        methods,
        merges,
        topK: positiveInt("top-k", args["top-k"]),
        deltaTopK: positiveInt("delta-top-k", args["delta-top-k"]),
        svdTopK: positiveInt("svd-top-k", args["svd-top-k"]),
        entries,
        out: args.out,
        threads: positiveInt("threads", args.threads),
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      if (args.json) {
        printJson({ out: result.out, seconds: result.seconds, rows: result.rows });
        return;
      }
      printResult(result.summary.trimEnd());
      info(
        `\n${result.rows.length} predictions in ${result.seconds.toFixed(1)} s; report written to ${result.out}`,
      );
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
