import { escapeHtml } from "../report/html.js";
import { LOO_NUMBERS } from "./scores.js";
import { type Cell, cellKey, formatCell, NUMBER_TITLES, type SummaryLayout } from "./summary.js";

export interface HeatmapFigure {
  title: string;
  png: Uint8Array;
  /** Weight drawn with the brightest colour. */
  max: number;
}

/**
 * A self-contained HTML page: the summary tables and the heatmaps embedded as data: URIs, inline
 * CSS, no scripts, fonts or links to fetch, so it opens the same offline, mailed or archived.
 */
export function summaryHtml(
  cells: Map<string, Cell>,
  layout: SummaryLayout,
  figures: HeatmapFigure[],
): string {
  const parts: string[] = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><title>loramix leave-one-out</title>',
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:0 0 1.5em}" +
      "th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right;font-variant-numeric:tabular-nums}" +
      "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}" +
      "img{image-rendering:pixelated;width:320px;height:auto;border:1px solid #888}</style>",
    "</head><body>",
    "<h1>Leave-one-out summary</h1>",
    `<ul>${layout.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`,
  ];
  for (const merge of layout.merges) {
    for (const number of LOO_NUMBERS) {
      if (
        !layout.methods.some((me) => layout.metrics.some((mt) => cells.has(cellKey(merge, number, me, mt))))
      ) {
        continue;
      }
      parts.push(`<h2>${escapeHtml(`${merge}: ${NUMBER_TITLES[number]}`)}</h2>`);
      parts.push(
        `<table><tr><th>method</th>${layout.metrics.map((m) => `<th>${escapeHtml(m)}</th>`).join("")}</tr>`,
      );
      for (const method of layout.methods) {
        const tds = layout.metrics
          .map(
            (metric) =>
              `<td>${escapeHtml(formatCell(cells.get(cellKey(merge, number, method, metric))))}</td>`,
          )
          .join("");
        parts.push(`<tr><td>${escapeHtml(method)}</td>${tds}</tr>`);
      }
      parts.push("</table>");
    }
  }
  if (figures.length > 0) {
    parts.push(
      "<h2>Mixture coefficients</h2>",
      "<p>Rows: targets; columns: candidates, in bank order. Colour from dark (weight 0) to yellow " +
        "(the largest weight of the matrix, given under each figure); grey: the target's own adapter, masked.</p>",
    );
    for (const f of figures) {
      const src = `data:image/png;base64,${Buffer.from(f.png).toString("base64")}`;
      parts.push(
        `<figure><img src="${src}" alt="${escapeHtml(f.title)}"><figcaption>${escapeHtml(f.title)} (max ${f.max.toPrecision(4)})</figcaption></figure>`,
      );
    }
  }
  parts.push("</body></html>");
  return `${parts.join("\n")}\n`;
}
