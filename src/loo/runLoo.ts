import { type Bank, loramixVersion, withBank } from "../bank/store.js";
import { METRICS, type Metric } from "../distances/metric.js";
import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import { MIX_MODES, type MixMode } from "../merge/mixAdapters.js";
import { PROFILE_SIDES, type ProfileSide } from "../profiles/profile.js";
import { checkOutDir } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { bankGram } from "../weights/gram.js";
import { neuralSideError, WEIGHT_METHODS, type WeightMethod } from "../weights/methods.js";
import { type LooRow, looPredictions } from "./predict.js";
import { writeLooReport } from "./report.js";
import { type LooConfiguration, looWeights } from "./weights.js";

export type { LooRow } from "./predict.js";
export type { LooConfiguration } from "./weights.js";

export interface LooOptions {
  metrics?: Metric[];
  /** Which side of the records the distances compare (default "both", SPEC §2). */
  side?: ProfileSide;
  methods?: WeightMethod[];
  merges?: MixMode[];
  /** Keep only the K largest weights of every row (renormalised) for every number; default: all weights. */
  topK?: number;
  /** Weights per row (the largest, renormalised) used for the ΔW numbers of linear and cat. */
  deltaTopK?: number;
  /** Weights per row used by delta-svd (a truncated SVD per module per prediction is the costly part). */
  svdTopK?: number;
  temperature?: number;
  /** Target entry ids (entries with an adapter); default: all of them. Candidates are always the whole bank. */
  entries?: string[];
  /** The trained MLP looked up for `neural` (as `loramix train-mlp` stored it). */
  mlpHidden?: number;
  mlpSeed?: number;
  /** Output directory (replaced atomically): results.json, heatmap PNGs, summary.md, summary.html. */
  out: string;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface LooResult {
  out: string;
  /** Candidate ids: the bank's entries with an adapter, bank order (the columns). */
  candidates: string[];
  targets: string[];
  configurations: LooConfiguration[];
  rows: LooRow[];
  notes: string[];
  /** summary.md's content. */
  summary: string;
  seconds: number;
}

/**
 * Leave-one-out over a bank (SPEC §6): each target entry's adapter is masked, its weights come from
 * the bank's pairwise distance row (normalized statistics over the whole row, self included, SPEC §4),
 * and the predicted adapter of every merge mode is compared with the real one. Parameter numbers of
 * `linear` come exactly from the bank's Gram matrix with all weights; ΔW numbers (and everything of
 * delta-svd) mix module factors in memory with the top `deltaTopK` / `svdTopK` weights, so the cost
 * stays bounded on a 500-adapter bank. No adapter file is written.
 */
export async function runLoo(bank: Bank | string, options: LooOptions): Promise<LooResult> {
  return withBank(bank, (opened) => looOnBank(opened, options));
}

async function looOnBank(
  bank: Bank,
  {
    metrics = ["js"],
    side = "both",
    methods = ["normalized"],
    merges = [...MIX_MODES],
    topK,
    deltaTopK = 32,
    svdTopK = 8,
    temperature = 1,
    entries,
    mlpHidden = 64,
    mlpSeed = 0,
    out,
    threads,
    signal,
    progress,
  }: LooOptions,
): Promise<LooResult> {
  const started = performance.now();
  await checkOutDir(out, "loo");
  for (const m of metrics)
    if (!METRICS.includes(m)) throw usageError(`unknown metric "${m}" (use ${METRICS.join(", ")})`);
  for (const m of methods)
    if (!WEIGHT_METHODS.includes(m))
      throw usageError(`unknown method "${m}" (use ${WEIGHT_METHODS.join(", ")})`);
  for (const m of merges)
    if (!MIX_MODES.includes(m)) throw usageError(`unknown merge "${m}" (use ${MIX_MODES.join(", ")})`);
  if (!PROFILE_SIDES.includes(side))
    throw usageError(`unknown side "${side}" (use ${PROFILE_SIDES.join(", ")})`);
  if (side !== "both" && methods.includes("neural")) throw neuralSideError(side);
  if (metrics.length === 0 || methods.length === 0 || merges.length === 0) {
    throw usageError("leave-one-out needs at least one metric, one method and one merge mode");
  }
  for (const [name, k] of [
    ["top-k", topK],
    ["ΔW top-k", deltaTopK],
    ["delta-svd top-k", svdTopK],
  ] as const) {
    if (k !== undefined && !(Number.isInteger(k) && k >= 1))
      throw usageError(`${name} must be a positive integer, got ${k}`);
  }

  const gram = await bankGram(bank, { threads, signal, progress });
  const ids = gram.ids;
  const n = ids.length;
  if (n < 2)
    throw new LoramixError("BANK", `${bank.dir}: leave-one-out needs at least 2 adapters, the bank has ${n}`);
  const column = new Map(ids.map((id, j) => [id, j]));
  const targetIds = entries ?? ids;
  if (targetIds.length === 0) throw usageError("no target entries given");
  const targets = targetIds.map((id) => {
    const j = column.get(id);
    if (j === undefined) {
      throw usageError(
        bank.entry(id) ? `entry "${id}" has no adapter to compare with` : `no entry "${id}" in ${bank.dir}`,
      );
    }
    return j;
  });

  const notes: string[] = [
    `bank ${bank.dir}: ${n} candidate adapters, ${targets.length} targets, tokenizer ${bank.tokenizerName}; profiles of the ${side === "both" ? "input + output (SPEC §2)" : `${side} side`}`,
    `weights: softmin temperature ${temperature}; normalized/neural z-scores over the whole row including the target's own entry (SPEC §4), which is then masked`,
    topK === undefined
      ? "parameter numbers of linear: exact from the bank's Gram matrix, all weights"
      : `every number uses the top ${topK} weights of each row (renormalised)`,
  ];
  const dK = Math.min(deltaTopK, topK ?? Number.POSITIVE_INFINITY);
  const sK = Math.min(svdTopK, topK ?? Number.POSITIVE_INFINITY);
  if (merges.includes("linear") || merges.includes("cat")) {
    notes.push(
      n - 1 <= dK
        ? "ΔW numbers of linear and cat: all weights"
        : `ΔW numbers of linear and cat: the top ${dK} weights of each row (renormalised)`,
    );
  }
  if (merges.includes("delta-svd")) {
    notes.push(
      n - 1 <= sK
        ? "delta-svd: all weights"
        : `delta-svd: the top ${sK} weights of each row (renormalised), to bound the cost of its per-module SVDs`,
    );
  }
  if (merges.includes("cat")) notes.push("cat: parameter numbers n/a (its rank is Σ r, not the target's r)");

  const { configurations, weights } = await looWeights(bank, ids, targets, {
    metrics,
    methods,
    side,
    topK,
    temperature,
    mlpHidden,
    mlpSeed,
    signal,
    progress,
  });
  for (const c of configurations) if (c.skipped) notes.push(`${c.metric}/${c.method} skipped: ${c.skipped}`);
  if (weights.some((w) => w.split)) {
    notes.push(
      "neural: the MLP was trained on a seeded 80% of the entries; results.json marks each target's split (train = in-sample)",
    );
  }

  const rows = await looPredictions(bank, gram, targets, weights, {
    merges,
    deltaTopK: dK,
    svdTopK: sK,
    signal,
    progress,
  });

  const layout = {
    merges,
    methods: methods.filter((m) => weights.some((w) => w.method === m)),
    metrics: metrics.filter((m) => weights.some((w) => w.metric === m)),
    notes,
  };
  const results = {
    loramix: loramixVersion(),
    node: process.version,
    created: new Date().toISOString(),
    bank: bank.dir,
    tokenizer: bank.tokenizerName,
    options: {
      metrics,
      methods,
      merges,
      topK: topK ?? null,
      deltaTopK: dK,
      svdTopK: sK,
      temperature,
      mlpHidden,
      mlpSeed,
    },
    notes,
    candidates: ids,
    targets: targets.map((i) => ids[i]),
    configurations,
    rows,
  };
  throwIfAborted(signal);
  const summary = await writeLooReport(out, { rows, weights, targets, candidates: n, layout, results });
  return {
    out,
    candidates: ids,
    targets: targets.map((i) => ids[i] as string),
    configurations,
    rows,
    notes,
    summary,
    seconds: (performance.now() - started) / 1000,
  };
}
