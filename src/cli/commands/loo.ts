import { defineCommand } from "citty";
import { Bank } from "../../bank/store.js";
import { METRICS, type Metric } from "../../distances/metric.js";
import { usageError } from "../../errors.js";
import { runLoo, WEIGHT_METHODS } from "../../loo/runLoo.js";
import { MIX_MODES, type MixMode } from "../../merge/mixAdapters.js";
import type { WeightMethod } from "../../weights/leaveOneOut.js";
import { createProgress, info, interrupt } from "../context.js";

/** "all" or a comma-separated subset of `allowed`. */
function list<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  if (value === "all") return [...allowed];
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const bad = items.filter((s) => !allowed.includes(s as T));
  if (items.length === 0 || bad.length > 0) {
    throw usageError(
      `--${name} must be "all" or a comma-separated list of ${allowed.join(", ")}, got "${value}"`,
    );
  }
  return [...new Set(items)] as T[];
}

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1))
    throw usageError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

export default defineCommand({
  meta: {
    name: "loo",
    description:
      "Leave-one-out over a bank: predict each entry's adapter from the others and compare (SPEC §6)",
  },
  args: {
    bank: { type: "positional", description: "Bank directory", required: true },
    metric: { type: "string", default: "js", description: 'Distances: "all" or e.g. kl,js' },
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
    const metrics: Metric[] = list("metric", args.metric, METRICS);
    const methods: WeightMethod[] = list("method", args.method, WEIGHT_METHODS);
    const merges: MixMode[] = list("merge", args.merge, MIX_MODES);
    const count = positive("entries", args.entries);
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
      const result = await runLoo({
        bank,
        metrics,
        methods,
        merges,
        topK: positive("top-k", args["top-k"]),
        deltaTopK: positive("delta-top-k", args["delta-top-k"]),
        svdTopK: positive("svd-top-k", args["svd-top-k"]),
        entries,
        out: args.out,
        threads: positive("threads", args.threads),
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      info(result.summary.trimEnd());
      info(
        `\n${result.rows.length} predictions in ${result.seconds.toFixed(1)} s; report written to ${result.out}`,
      );
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
