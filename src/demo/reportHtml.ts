import type { TargetRow } from "./run.js";
import {
  BASELINE_TITLES,
  BASELINES,
  type FamilyShares,
  familyShareRows,
  formatGap,
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
  file: string;
  png: Uint8Array;
  max: number;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function htmlTable(rows: string[][], id: string): string {
  const [header, ...body] = rows;
  return (
    `<table id="${id}"><thead><tr>${(header ?? []).map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead><tbody>` +
    body.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("") +
    "</tbody></table>"
  );
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
  configs,
  candidates,
}: {
  grid: ScoreGrid;
  familyShares: FamilyShares;
  layout: TableLayout;
  rows: TargetRow[];
  notes: string[];
  figures: DemoFigure[];
  configs: string[];
  candidates: string[];
}): string {
  const variants = [...BASELINES, ...LORAMIX_ROWS.filter((v) => grid.get(v)?.size), ...configs];
  const ci = (x: number) => (Number.isFinite(x) ? `±${x.toFixed(2)}` : "");
  const perTask: string[][] = [["task", "family", ...variants]];
  for (const r of rows) {
    perTask.push([
      `${r.task} (${r.references.length})`,
      r.family,
      ...variants.map((v) => {
        const s = r.scores[v];
        return s
          ? `${s.rougeL.toFixed(2)}${ci(s.rougeLCi)} / ${s.exactMatch.toFixed(2)}${ci(s.exactMatchCi)}`
          : "—";
      }),
    ]);
  }
  const parts = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><title>loramix demo</title>',
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;margin:0 0 1.5em}" +
      "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right;font-variant-numeric:tabular-nums}" +
      "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}" +
      "img{image-rendering:pixelated;width:360px;height:auto;border:1px solid #888}.wide{overflow-x:auto}" +
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
    "<h2>Weight on the target's family</h2>",
    "<p>The share of each configuration's mixture weight that goes to the other tasks of the target's family (tasks sharing its answer vocabulary), mean ± std over targets.</p>",
    htmlTable(familyShareRows(familyShares, layout), "family-weight"),
    "<h2>Mixture coefficients</h2>",
    `<p>Rows: target tasks (${rows.length}); columns: the ${candidates.length} bank adapters in id order; grey: the target's own adapter (masked); colour ∝ weight / the figure's largest weight.</p>`,
    ...figures.map(
      (f) =>
        `<figure><img class="heatmap" alt="coefficients ${escapeHtml(f.config)}" src="data:image/png;base64,${Buffer.from(f.png).toString("base64")}">` +
        `<figcaption>${escapeHtml(f.config)} (max weight ${f.max.toFixed(3)})</figcaption></figure>`,
    ),
    "<h2>Per task (Rouge-L / exact match)</h2>",
    `<p>${[...BASELINES.map((b) => `${escapeHtml(b)}: ${escapeHtml(BASELINE_TITLES[b])}`), ...LORAMIX_ROWS.map((r) => `${escapeHtml(r)}: ${escapeHtml(LORAMIX_TITLES[r])}`)].join("; ")}.</p>`,
    "<p>Each cell: the task's mean ± the half-width of its 95% interval (1.96 · sample std / √n over its n test records, n in brackets after the task). Two variants whose intervals overlap on a task are not told apart by that task.</p>",
    `<div class="wide">${htmlTable(perTask, "per-task")}</div>`,
    "</body></html>",
  ];
  return `${parts.join("\n")}\n`;
}
