import type { Metric } from "../distances/metric.js";
import { type Summary, summarize } from "../eval/metrics.js";
import type { WeightMethod } from "../weights/methods.js";

/** The input-independent and reference rows printed under every table. */
export const BASELINES = ["base", "majority", "nearest", "uniform", "scratch", "trained"] as const;
export type Baseline = (typeof BASELINES)[number];

export const BASELINE_TITLES: Record<Baseline, string> = {
  base: "base model (no adapter)",
  majority: "majority answer of the train split",
  nearest: "nearest single adapter (JS, top-1)",
  uniform: "uniform average of the bank",
  scratch: "the same fine-tuning from the seeded init (no bank)",
  trained: "the task's own trained adapter",
};

/**
 * loramix's own rows: the nearest adapter by the answers' distribution (output-side JS),
 * `generate --select loss` (candidates scored on the target's train records), `--select fit`
 * (the best candidates' mix refined on the same loss, bench/select-fit.mjs) as a mix only, and
 * the default: that mix fine-tuned by a few training steps on the train records (bench/finetune.mjs).
 */
export const LORAMIX_ROWS = ["nearest-output", "select-loss", "select-fit", "finetuned"] as const;
export type LoramixRow = (typeof LORAMIX_ROWS)[number];

export const LORAMIX_TITLES: Record<LoramixRow, string> = {
  "nearest-output": "loramix: nearest adapter by output-side JS",
  "select-loss": "loramix: --select loss --finetune 0",
  "select-fit": "loramix: --select fit --finetune 0 (mix only)",
  finetuned: "loramix: --select fit + fine-tune (default)",
};

/** The paper's column order (Tables 1 and 3). */
export const TABLE_METRICS: readonly Metric[] = ["wd", "kl", "js", "mmd"];

export type Score = "rougeL" | "exactMatch";

/** One evaluated variant ("base", "normalized/js", ...) of one target task: means over its test records. */
export interface TaskScore {
  rougeL: number;
  exactMatch: number;
}

/** variant → target → its score. */
export type ScoreGrid = Map<string, Map<string, TaskScore>>;

export function configName(method: WeightMethod, metric: Metric): string {
  return `${method}/${metric}`;
}

/** Mean ± population std over the targets of one variant's per-task means. */
export function variantSummary(grid: ScoreGrid, variant: string, score: Score): Summary | undefined {
  const row = grid.get(variant);
  if (!row || row.size === 0) return undefined;
  return summarize([...row.values()].map((s) => s[score]));
}

/** Share of the base → trained gap a variant closes, from the means over targets; undefined without a gap. */
export function gapClosed(grid: ScoreGrid, variant: string, score: Score): number | undefined {
  const v = variantSummary(grid, variant, score)?.mean;
  const base = variantSummary(grid, "base", score)?.mean;
  const trained = variantSummary(grid, "trained", score)?.mean;
  if (v === undefined || base === undefined || trained === undefined || trained === base) return undefined;
  return (v - base) / (trained - base);
}

export function formatSummary(s: Summary | undefined): string {
  return s === undefined ? "—" : `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}`;
}

/** Seconds per target as the demo's notes give them: mean ± std over the targets. */
export function secondsPerTarget(seconds: number[]): string {
  const s = summarize(seconds);
  return `${s.mean.toFixed(1)} ± ${s.std.toFixed(1)} s per target`;
}

export function formatGap(g: number | undefined): string {
  return g === undefined ? "—" : `${Math.round(g * 100)}%`;
}

export interface TableLayout {
  metrics: readonly Metric[];
  methods: readonly WeightMethod[];
}

/** One of the paper's tables as rows of cells (first row = header): methods × metrics, then baselines. */
export function tableRows(grid: ScoreGrid, score: Score, layout: TableLayout): string[][] {
  const rows: string[][] = [["method", ...layout.metrics.map((m) => m.toUpperCase())]];
  for (const method of layout.methods) {
    rows.push([
      method,
      ...layout.metrics.map((m) => formatSummary(variantSummary(grid, configName(method, m), score))),
    ]);
  }
  for (const r of LORAMIX_ROWS)
    if (grid.get(r)?.size) rows.push([LORAMIX_TITLES[r], formatSummary(variantSummary(grid, r, score))]);
  for (const b of BASELINES)
    if (grid.get(b)?.size) rows.push([BASELINE_TITLES[b], formatSummary(variantSummary(grid, b, score))]);
  return rows;
}

/** Share of the base → trained gap closed by each configuration (methods × metrics). */
export function gapRows(grid: ScoreGrid, score: Score, layout: TableLayout): string[][] {
  const rows: string[][] = [["method", ...layout.metrics.map((m) => m.toUpperCase())]];
  for (const method of layout.methods) {
    rows.push([
      method,
      ...layout.metrics.map((m) => formatGap(gapClosed(grid, configName(method, m), score))),
    ]);
  }
  for (const r of LORAMIX_ROWS)
    if (grid.get(r)?.size) rows.push([LORAMIX_TITLES[r], formatGap(gapClosed(grid, r, score))]);
  for (const b of ["nearest", "uniform", "scratch", "majority"] as const)
    if (grid.get(b)?.size) rows.push([BASELINE_TITLES[b], formatGap(gapClosed(grid, b, score))]);
  return rows;
}

/** variant → target → the share of its mixture weight on the other tasks of the target's family. */
export type FamilyShares = Map<string, Map<string, number>>;

/**
 * How much weight each configuration puts on the target's siblings (tasks that share its answers),
 * mean ± std over targets: mixing can only transfer an answer format the siblings carry.
 */
export function familyShareRows(shares: FamilyShares, layout: TableLayout): string[][] {
  const cell = (variant: string) => {
    const row = shares.get(variant);
    return formatSummary(row && row.size > 0 ? summarize([...row.values()]) : undefined);
  };
  const rows: string[][] = [["method", ...layout.metrics.map((m) => m.toUpperCase())]];
  for (const method of layout.methods)
    rows.push([method, ...layout.metrics.map((m) => cell(configName(method, m)))]);
  for (const r of LORAMIX_ROWS) if (shares.get(r)?.size) rows.push([LORAMIX_TITLES[r], cell(r)]);
  for (const b of ["nearest", "uniform"] as const) rows.push([BASELINE_TITLES[b], cell(b)]);
  return rows;
}

/** The configuration with the highest mean over tasks (the first of equals), if any was evaluated. */
export function bestConfig(
  grid: ScoreGrid,
  configs: string[],
  score: Score,
): { name: string; mean: number } | undefined {
  let best: { name: string; mean: number } | undefined;
  for (const c of configs) {
    const m = variantSummary(grid, c, score)?.mean;
    if (m !== undefined && (best === undefined || m > best.mean)) best = { name: c, mean: m };
  }
  return best;
}

/**
 * What the run measured, in words: whether the best generated configuration beats the base
 * model and the majority answer, and how much of the base → trained gap it closes.
 */
export function verdict(grid: ScoreGrid, configs: string[], score: Score): string {
  const label = score === "rougeL" ? "Rouge-L" : "exact match";
  const best = bestConfig(grid, configs, score);
  const base = variantSummary(grid, "base", score)?.mean;
  const majority = variantSummary(grid, "majority", score)?.mean;
  const trained = variantSummary(grid, "trained", score)?.mean;
  if (!best || base === undefined) return `${label}: nothing to compare.`;
  const n = grid.get("base")?.size ?? 0;
  const beats = configs.filter((c) => (variantSummary(grid, c, score)?.mean ?? -1) > base).length;
  const parts = [
    `${label}: the best generated configuration, ${best.name}, scores ${best.mean.toFixed(3)} against ${base.toFixed(3)} for the base model and ${trained?.toFixed(3) ?? "—"} for the trained adapters (${n} tasks).`,
  ];
  if (best.mean > base) {
    parts.push(
      `${beats} of ${configs.length} configurations beat the base model; the best closes ${formatGap(gapClosed(grid, best.name, score))} of the gap.`,
    );
  } else {
    parts.push(`No generated configuration beats the base model here.`);
  }
  if (majority !== undefined) {
    parts.push(
      best.mean > majority
        ? `It also beats always answering the majority label (${majority.toFixed(3)}).`
        : `It does not beat always answering the majority label (${majority.toFixed(3)}).`,
    );
  }
  return parts.join(" ");
}

/**
 * Which adapter a user should take, in words: loramix's default against the best of the paper's
 * configurations and every honest baseline (base model, majority answer, nearest single adapter,
 * the task's own trained adapter).
 */
export function recommendation(grid: ScoreGrid, configs: string[], score: Score): string {
  const label = score === "rougeL" ? "Rouge-L" : "exact match";
  const mean = (v: string) => variantSummary(grid, v, score)?.mean;
  // A demo run with --finetune 0 or --no-fit has no default row: the verdict is then about the
  // mix it made instead, --select fit, else --select loss.
  const has = (v: string) => (grid.get(v)?.size ?? 0) > 0;
  const flags = {
    finetuned: "loramix's default (--select fit + fine-tune)",
    "select-fit": "--select fit --finetune 0",
    "select-loss": "--select loss --finetune 0",
  } as const;
  const row = has("finetuned") ? "finetuned" : has("select-fit") ? "select-fit" : "select-loss";
  const flag = flags[row];
  const ours = mean(row);
  if (ours === undefined) return `${label}: ${flag} was not evaluated.`;
  const paper = bestConfig(grid, configs, score);
  // "generated": made by loramix or the paper's method; a loss to one of them is named.
  type Rival = { name: string; mean: number | undefined; kind: "baseline" | "generated" | "own" };
  const rivals: Rival[] = [
    { name: "the base model", mean: mean("base"), kind: "baseline" },
    { name: "the majority answer", mean: mean("majority"), kind: "baseline" },
    { name: "the nearest single adapter", mean: mean("nearest"), kind: "generated" },
    { name: "the nearest adapter by output side", mean: mean("nearest-output"), kind: "generated" },
    ...(row === "finetuned"
      ? [
          { name: "the same mix without fine-tuning", mean: mean("select-fit"), kind: "generated" } as Rival,
          {
            name: "the same training steps without the bank",
            mean: mean("scratch"),
            kind: "generated",
          } as Rival,
        ]
      : []),
    ...(row !== "select-loss"
      ? [{ name: "--select loss", mean: mean("select-loss"), kind: "generated" } as Rival]
      : []),
    { name: `the best paper configuration (${paper?.name ?? "—"})`, mean: paper?.mean, kind: "generated" },
    { name: "the tasks' own trained adapters", mean: mean("trained"), kind: "own" },
  ];
  const known = rivals.filter((r): r is Rival & { mean: number } => r.mean !== undefined);
  const beaten = known.filter((r) => ours > r.mean).map((r) => r.name);
  const lost = known.filter((r) => ours <= r.mean);
  const listed = (rows: typeof known) => rows.map((r) => `${r.name} (${r.mean.toFixed(3)})`).join(", ");
  const needs =
    row === "finetuned"
      ? "it needs the base model's Hugging Face folder and the dataset's train records"
      : "it needs only the base model and the dataset's train records";
  const higher = lost.filter((r) => r.kind === "generated");
  const advice = lost.every((r) => r.kind === "own")
    ? `Use ${flag}: ${needs}.`
    : higher.length > 0
      ? `Check before relying on ${flag}: ${listed(higher)} scored higher here.`
      : `Of the adapters generated here, use ${flag} (${needs}), and check it on your data with \`loramix eval\` before relying on it.`;
  return (
    `${label}: ${flag} scores ${ours.toFixed(3)} and closes ${formatGap(gapClosed(grid, row, score))} of the base → trained gap. ` +
    `It beats ${beaten.length > 0 ? beaten.join(", ") : "none of the baselines"}` +
    `${lost.length > 0 ? `; not ${listed(lost)}` : ""}. ${advice}`
  );
}

/**
 * What a reader could misread in the tables, said in words (Rouge-L): the nearest single adapter
 * beating every mixture, a "best" mixture that is one adapter in disguise (`maxWeight`: a
 * configuration's mean over targets of its largest weight), and shares of the gap above 100%.
 */
export function readingNotes(grid: ScoreGrid, configs: string[], maxWeight: Map<string, number>): string[] {
  const mean = (v: string) => variantSummary(grid, v, "rougeL")?.mean;
  const notes: string[] = [];
  const best = bestConfig(grid, configs, "rougeL");
  const nearest = mean("nearest");
  if (best && nearest !== undefined && nearest > best.mean) {
    notes.push(
      `The nearest single adapter (${nearest.toFixed(3)}) beats every mixture of the paper's configurations (best ${best.name}, ${best.mean.toFixed(3)}): on this bank, mixing dilutes the adapter that fits.`,
    );
  }
  const top = best && maxWeight.get(best.name);
  if (best && top !== undefined && top >= EFFECTIVELY_ONE) {
    notes.push(
      `The best mixture, ${best.name}, puts ${top.toFixed(3)} of its weight on one adapter (mean over targets): it is effectively a single adapter, not a mix.`,
    );
  }
  const over = [...LORAMIX_ROWS, ...configs, "nearest", "majority"].filter(
    (v) => (gapClosed(grid, v, "rougeL") ?? 0) > 1,
  );
  if (over.length > 0) {
    notes.push(
      `A share above 100% (${over.join(", ")}) means scoring above the tasks' own trained adapters, which are the 100% mark, not a ceiling.`,
    );
  }
  return notes;
}

/** A mixture whose largest weight is at least this is read as one adapter. */
const EFFECTIVELY_ONE = 0.95;
