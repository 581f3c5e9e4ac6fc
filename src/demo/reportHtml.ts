import { escapeHtml, htmlTable } from "../report/html.js";
import { type GapBar, svgColourBar, svgGapChart, svgHeatmap } from "../report/svg.js";
import type { TargetRow } from "./evaluate.js";
import {
  BASELINE_TITLES,
  BASELINES,
  type FamilyShares,
  familyShareRows,
  formatGap,
  gapClosed,
  gapRows,
  LORAMIX_ROWS,
  LORAMIX_TITLES,
  recommendation,
  type ScoreGrid,
  type TableLayout,
  tableRows,
  verdict,
} from "./tables.js";

export interface DemoFigure {
  config: string;
  /** targets × candidates weights, row-major (rows in the order of the report's rows). */
  values: Float64Array;
  /** Per target row: the column of its own adapter, excluded from its mixture. */
  ownColumn: number[];
}

const METHOD_ABBREVIATIONS: Record<string, string> = {
  attentional: "att",
  normalized: "norm",
  neural: "neur",
};

/** "attentional/mmd" → "att/MMD": twelve such columns fit a 1400 px page. */
function shortConfig(variant: string): string {
  const [method, metric] = variant.split("/");
  return metric === undefined
    ? variant
    : `${METHOD_ABBREVIATIONS[method as string] ?? method}/${metric.toUpperCase()}`;
}

/** Task names in the per-task tables are cut to this many characters (the heatmaps show them whole). */
const TASK_CHARS = 36;

function clip(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}

/** A bank id as a column label: Super-NI ids are long, their "taskNNN" prefix is unique. */
function shortId(id: string): string {
  return /^task\d+/.exec(id)?.[0] ?? id.slice(0, 12);
}

/**
 * The demo's report: both tables, the gap shares, what was measured in words, the coefficient
 * heatmaps and one row per task. Self-contained (inline CSS, images as data: URIs, no scripts), so
 * it opens the same offline or archived.
 */
export function demoHtml({
  grid,
  familyShares,
  layout,
  rows,
  notes,
  figures,
  scaleMax,
  configs,
  candidates,
}: {
  grid: ScoreGrid;
  familyShares: FamilyShares;
  layout: TableLayout;
  rows: TargetRow[];
  notes: string[];
  figures: DemoFigure[];
  /** The weight drawn with the top colour in every heatmap. */
  scaleMax: number;
  configs: string[];
  candidates: string[];
}): string {
  const loramixRows = LORAMIX_ROWS.filter((v) => grid.get(v)?.size);
  const baselines = BASELINES.filter((v) => grid.get(v)?.size);
  const ci = (x: number) => (Number.isFinite(x) ? `±${x.toFixed(2)}` : "");
  // One table per score and group of columns, so that each fits a 1400 px page without wrapping.
  // The family column only beside the baselines: the configurations' table needs its width.
  const perTask = (variants: string[], score: "rougeL" | "exactMatch", family: boolean): string[][] => [
    ["task (n)", ...(family ? ["family"] : []), ...variants.map(shortConfig)],
    ...rows.map((r) => [
      `${clip(r.task, TASK_CHARS)} (${r.references.length})`,
      ...(family ? [r.family] : []),
      ...variants.map((v) => {
        const s = r.scores[v];
        return s ? `${s[score].toFixed(2)}${ci(score === "rougeL" ? s.rougeLCi : s.exactMatchCi)}` : "—";
      }),
    ]),
  ];
  const gapBars = (score: "rougeL" | "exactMatch"): GapBar[] =>
    [
      ...loramixRows,
      ...configs,
      ...(["nearest", "uniform", "scratch", "majority"] as const).filter((v) => grid.get(v)?.size),
    ].map((v) => ({
      label:
        (LORAMIX_TITLES as Record<string, string>)[v] ?? (BASELINE_TITLES as Record<string, string>)[v] ?? v,
      share: gapClosed(grid, v, score),
      perTask: rows.map((r) => {
        const [x, base, own] = [r.scores[v], r.scores.base, r.scores.trained].map((s) => s?.[score]);
        return x === undefined || base === undefined || own === undefined || own === base
          ? undefined
          : (x - base) / (own - base);
      }),
    }));
  const taskNames = rows.map((r) => r.task);
  const parts = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><title>loramix demo</title>',
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;margin:0 0 1.5em}" +
      "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right;font-variant-numeric:tabular-nums}" +
      "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}" +
      ".per-task{font-size:.85em}.per-task td,.per-task th{white-space:nowrap;padding:.2em .4em}" +
      "svg{display:block;margin:0 0 1em}" +
      ".verdict{font-size:1.1em;background:#f4f4f4;padding:.6em 1em;border-left:4px solid #446}</style>",
    "</head><body>",
    "<h1>loramix demo: generated vs trained LoRA adapters</h1>",
    `<ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`,
    `<p class="verdict">${escapeHtml(recommendation(grid, configs, "rougeL"))}<br>${escapeHtml(recommendation(grid, configs, "exactMatch"))}</p>`,
    `<p>${escapeHtml(verdict(grid, configs, "rougeL"))}<br>${escapeHtml(verdict(grid, configs, "exactMatch"))}</p>`,
    "<h2>Table 1 — Rouge-L</h2>",
    htmlTable(tableRows(grid, "rougeL", layout), "table-rouge"),
    "<h2>Table 3 — exact match</h2>",
    htmlTable(tableRows(grid, "exactMatch", layout), "table-em"),
    "<h2>Share of the base → trained gap closed</h2>",
    "<h3>Rouge-L</h3>",
    htmlTable(gapRows(grid, "rougeL", layout), "gap-rouge"),
    "<h3>Exact match</h3>",
    htmlTable(gapRows(grid, "exactMatch", layout), "gap-em"),
    `<p>${escapeHtml(`Gap share = (configuration − base) / (trained − base), from the means over tasks; ${formatGap(1)} = as good as the trained adapters.`)}</p>`,
    svgGapChart(gapBars("rougeL"), "Share of the gap closed, Rouge-L"),
    svgGapChart(gapBars("exactMatch"), "Share of the gap closed, exact match"),
    "<h2>Weight on the target's family</h2>",
    "<p>The share of each configuration's mixture weight that goes to the other tasks of the target's family (tasks sharing its answer vocabulary), mean ± std over targets.</p>",
    htmlTable(familyShareRows(familyShares, layout), "family-weight"),
    "<h2>Mixture coefficients</h2>",
    `<p>Rows: the ${rows.length} target tasks; columns: the ${candidates.length} bank adapters in id order (hover for full names and weights); grey: the target's own adapter (excluded). Every heatmap uses the one colour scale below, so equal colours mean equal weights.</p>`,
    svgColourBar(scaleMax, "weight of an adapter in the target's mixture"),
    ...figures.map((f) =>
      svgHeatmap({
        title: f.config,
        rowLabels: taskNames,
        colLabels: candidates.map(shortId),
        colTitles: candidates,
        values: f.values,
        scaleMax,
        masked: (r, c) => c === f.ownColumn[r],
      }),
    ),
    "<h2>Per task</h2>",
    `<p>${[...BASELINES.map((b) => `${escapeHtml(b)}: ${escapeHtml(BASELINE_TITLES[b])}`), ...LORAMIX_ROWS.map((r) => `${escapeHtml(r)}: ${escapeHtml(LORAMIX_TITLES[r])}`)].join("; ")}.</p>`,
    "<p>Each cell: the task's mean ± the half-width of its 95% interval (1.96 · sample std / √n over its n test records). Two variants whose intervals overlap on a task are not told apart by that task.</p>",
    "<h3>Rouge-L: baselines</h3>",
    `<div class="per-task">${htmlTable(perTask(baselines, "rougeL", true), "per-task")}</div>`,
    "<h3>Rouge-L: loramix</h3>",
    `<div class="per-task">${htmlTable(perTask(loramixRows, "rougeL", false), "per-task-loramix")}</div>`,
    "<h3>Rouge-L: the paper's configurations</h3>",
    "<p>att = attentional, norm = normalized, neur = neural weighting; WD, KL, JS, MMD: the distance.</p>",
    `<div class="per-task">${htmlTable(perTask(configs, "rougeL", false), "per-task-configs")}</div>`,
    "<h3>Exact match: baselines</h3>",
    `<div class="per-task">${htmlTable(perTask(baselines, "exactMatch", true), "per-task-em")}</div>`,
    "<h3>Exact match: loramix</h3>",
    `<div class="per-task">${htmlTable(perTask(loramixRows, "exactMatch", false), "per-task-loramix-em")}</div>`,
    "<h3>Exact match: the paper's configurations</h3>",
    `<div class="per-task">${htmlTable(perTask(configs, "exactMatch", false), "per-task-configs-em")}</div>`,
    "</body></html>",
  ];
  return `${parts.join("\n")}\n`;
}
