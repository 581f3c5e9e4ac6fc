import { defineCommand } from "citty";
import { Bank } from "../../bank/store.js";
import { bankDistanceMatrices } from "../../distances/matrix.js";
import { METRICS, type Metric, type MmdMode } from "../../distances/metric.js";
import { usageError } from "../../errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { createProgress, info, interrupt } from "../context.js";

function csv(ids: string[], values: Float64Array): string {
  const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const n = ids.length;
  const lines = [["target\\candidate", ...ids].map(quote).join(",")];
  for (let i = 0; i < n; i++) lines.push([quote(ids[i]!), ...values.subarray(i * n, (i + 1) * n)].join(","));
  return `${lines.join("\n")}\n`;
}

function rows(n: number, values: Float64Array): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from(values.subarray(i * n, (i + 1) * n)));
}

export default defineCommand({
  meta: {
    name: "distances",
    description:
      "Pairwise distances between the bank's datasets (SPEC §3); rows = targets. Cached in the bank.",
  },
  args: {
    bank: { type: "positional", required: true, description: "Bank directory" },
    metric: { type: "string", default: "all", description: "kl | js | wd | mmd | all" },
    mmd: { type: "string", default: "exact", description: "MMD estimator: exact | sampled (the authors')" },
    seed: { type: "string", default: "0", description: "Seed of the sampled MMD estimator" },
    out: { type: "string", required: true, description: "Output .json, or .csv (one metric)" },
  },
  async run({ args }) {
    const metrics: Metric[] =
      args.metric === "all"
        ? [...METRICS]
        : METRICS.includes(args.metric as Metric)
          ? [args.metric as Metric]
          : [];
    if (metrics.length === 0)
      throw usageError(`--metric must be kl, js, wd, mmd or all, got "${args.metric}"`);
    if (args.mmd !== "exact" && args.mmd !== "sampled") throw usageError(`--mmd must be exact or sampled`);
    const seed = Number(args.seed);
    if (!Number.isInteger(seed)) throw usageError(`--seed must be an integer, got "${args.seed}"`);
    const asCsv = args.out.endsWith(".csv");
    if (asCsv && metrics.length > 1)
      throw usageError("CSV holds one matrix: pick one --metric, or write .json");
    const bank = await Bank.open(args.bank);
    const progress = createProgress();
    const started = performance.now();
    try {
      const results = await bankDistanceMatrices(bank, metrics, {
        mmd: args.mmd as MmdMode,
        seed,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const ids = results[0]!.ids;
      const n = ids.length;
      let text: string;
      if (asCsv) text = csv(ids, results[0]!.values);
      else if (metrics.length === 1)
        text = JSON.stringify({ ids, metric: metrics[0], matrix: rows(n, results[0]!.values) });
      else {
        const matrices = Object.fromEntries(results.map((r) => [r.metric, rows(n, r.values)]));
        text = JSON.stringify({ ids, matrices, ...(metrics.includes("mmd") ? { mmd: args.mmd, seed } : {}) });
      }
      await writeFileAtomic(args.out, asCsv ? text : `${text}\n`);
      info(
        `${metrics.join(", ")}: ${n}×${n} in ${((performance.now() - started) / 1000).toFixed(1)} s -> ${args.out}`,
      );
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
