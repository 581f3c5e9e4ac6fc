import { resolve } from "node:path";
import { defineCommand } from "citty";
import { Bank } from "../../bank/store.js";
import { bankDistanceMatrices } from "../../distances/matrix.js";
import { METRICS, type Metric } from "../../distances/metric.js";
import { MMD_SAMPLES } from "../../distances/mmd.js";
import { usageError } from "../../errors.js";
import { checkOutFile, filePrefix, type OutFileKind, writeOutFile } from "../../util/atomic.js";
import { createProgress, info, interrupt, printJson, printResult } from "../context.js";
import { JSON_OPTION, SIDE_ARG, sideOption } from "../options.js";

function csv(ids: string[], values: Float64Array): string {
  const quote = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const n = ids.length;
  const lines = [["target\\candidate", ...ids].map(quote).join(",")];
  for (let i = 0; i < n; i++)
    lines.push([quote(ids[i] as string), ...values.subarray(i * n, (i + 1) * n)].join(","));
  return `${lines.join("\n")}\n`;
}

/** `--out`: a new path, or a matrix this command wrote (its JSON or CSV opening). */
const DISTANCES_FILE: OutFileKind = {
  what: "a distance matrix",
  written: async (path) => /^(?:\{"ids":\[|target\\candidate,)/.test(await filePrefix(path, 64)),
};

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
    ...JSON_OPTION,
    bank: { type: "positional", required: true, description: "Bank directory" },
    metric: { type: "string", default: "all", description: "kl | js | wd | mmd | all" },
    side: SIDE_ARG,
    mmd: { type: "string", default: "exact", description: "MMD estimator: exact | sampled (the authors')" },
    seed: { type: "string", default: "0", description: "Seed of the sampled MMD estimator" },
    samples: {
      type: "string",
      default: String(MMD_SAMPLES),
      description: "Ids drawn per dataset by sampled MMD",
    },
    out: { type: "string", required: true, description: "Output .json, .csv (one metric), or - for stdout" },
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
    const mmd = args.mmd;
    if (mmd !== "exact" && mmd !== "sampled")
      throw usageError(`--mmd must be exact or sampled, got "${mmd}"`);
    const seed = Number(args.seed);
    if (args.seed.trim() === "" || !Number.isSafeInteger(seed) || seed < 0) {
      throw usageError(`--seed must be a non-negative integer, got "${args.seed}"`);
    }
    const samples = Number(args.samples);
    if (!Number.isSafeInteger(samples) || samples < 1) {
      throw usageError(`--samples must be a positive integer, got "${args.samples}"`);
    }
    const side = sideOption(args.side);
    if (args.json && args.out === "-")
      throw usageError("--out - already prints the matrices as JSON on stdout; drop --json");
    const asCsv = args.out.toLowerCase().endsWith(".csv");
    if (asCsv && metrics.length > 1)
      throw usageError("a CSV holds one matrix: pick one --metric, or write .json");
    if (args.out !== "-") await checkOutFile(args.out, DISTANCES_FILE);
    const bank = await Bank.open(args.bank);
    const progress = createProgress();
    const started = performance.now();
    try {
      const results = await bankDistanceMatrices(bank, metrics, {
        side,
        mmd,
        seed,
        mmdSamples: samples,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const ids = results[0]?.ids ?? [];
      const n = ids.length;
      // The estimator travels with an MMD matrix; the seed only matters for the sampled one.
      const mmdInfo = metrics.includes("mmd") ? { mmd, ...(mmd === "sampled" ? { seed, samples } : {}) } : {};
      let text: string;
      if (asCsv) text = csv(ids, results[0]?.values ?? new Float64Array(0));
      else if (metrics.length === 1) {
        text = `${JSON.stringify({ ids, side, metric: metrics[0], ...mmdInfo, matrix: rows(n, results[0]?.values ?? new Float64Array(0)) })}\n`;
      } else {
        const matrices = Object.fromEntries(results.map((r) => [r.metric, rows(n, r.values)]));
        text = `${JSON.stringify({ ids, side, ...mmdInfo, matrices })}\n`;
      }
      if (args.out === "-") process.stdout.write(text);
      else await writeOutFile(args.out, text, DISTANCES_FILE);
      const seconds = (performance.now() - started) / 1000;
      const summary = `${metrics.join(", ")}: ${n}×${n} in ${seconds.toFixed(1)} s`;
      // With `--out -` stdout carries the matrix itself, so the summary stays a message.
      if (args.out === "-") info(summary);
      else if (args.json) printJson({ metrics, side, ids: n, seconds, out: resolve(args.out) });
      else printResult(`${summary} -> ${args.out}`);
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
