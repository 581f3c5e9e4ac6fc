/**
 * Figures as inline SVG: text stays text (labels readable at any zoom, searchable, no font
 * rasteriser to write), and a page of them is still one self-contained file.
 */
import { heatmapColor, MASKED_COLOR } from "./heatmap.js";
import { escapeHtml } from "./html.js";

const CELL = 11;
const FONT = 11;
/** Rough advance of one character at FONT px, to size label margins without measuring text. */
const CHAR = 6.2;

const rgb = (c: readonly number[]) => `rgb(${c.join(",")})`;

export interface SvgHeatmapOptions {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  /** Row-major, rows × cols. */
  values: ArrayLike<number>;
  /** The weight drawn with the top colour: one value for every heatmap of a page. */
  scaleMax: number;
  masked?: (row: number, col: number) => boolean;
  /** Full names shown on hover (default: the labels). */
  rowTitles?: string[];
  colTitles?: string[];
}

/** A labelled heatmap: row labels left, column labels rotated below, each cell's value on hover. */
export function svgHeatmap(o: SvgHeatmapOptions): string {
  const rows = o.rowLabels.length;
  const cols = o.colLabels.length;
  if (o.values.length !== rows * cols)
    throw new RangeError(`svgHeatmap: ${o.values.length} values for ${rows}×${cols}`);
  const left = Math.ceil(Math.max(...o.rowLabels.map((l) => l.length), 1) * CHAR) + 6;
  const bottom = Math.ceil(Math.max(...o.colLabels.map((l) => l.length), 1) * CHAR) + 6;
  const top = FONT + 8;
  const width = left + cols * CELL + 2;
  const height = top + rows * CELL + bottom;
  const parts = [
    `<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" data-scale-max="${o.scaleMax}" font-size="${FONT}" font-family="system-ui,sans-serif">`,
    `<text x="${left}" y="${FONT + 2}" font-weight="bold">${escapeHtml(o.title)}</text>`,
  ];
  for (let r = 0; r < rows; r++) {
    const y = top + r * CELL;
    parts.push(
      `<text class="row-label" x="${left - 4}" y="${y + CELL - 2}" text-anchor="end"><title>${escapeHtml(o.rowTitles?.[r] ?? (o.rowLabels[r] as string))}</title>${escapeHtml(o.rowLabels[r] as string)}</text>`,
    );
    for (let c = 0; c < cols; c++) {
      const v = o.values[r * cols + c] as number;
      const masked = o.masked?.(r, c) ?? false;
      const fill = masked ? MASKED_COLOR : heatmapColor(o.scaleMax > 0 ? v / o.scaleMax : 0);
      const what = masked ? "own adapter (excluded)" : v.toFixed(4);
      parts.push(
        `<rect x="${left + c * CELL}" y="${y}" width="${CELL}" height="${CELL}" fill="${rgb(fill)}"><title>${escapeHtml(`${o.rowTitles?.[r] ?? o.rowLabels[r]} ← ${o.colTitles?.[c] ?? o.colLabels[c]}: ${what}`)}</title></rect>`,
      );
    }
  }
  const labelsY = top + rows * CELL + 4;
  for (let c = 0; c < cols; c++) {
    const x = left + c * CELL + CELL - 3;
    parts.push(
      `<text class="col-label" transform="translate(${x},${labelsY}) rotate(90)"><title>${escapeHtml(o.colTitles?.[c] ?? (o.colLabels[c] as string))}</title>${escapeHtml(o.colLabels[c] as string)}</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}

/** The colour scale of the heatmaps: 0 … scaleMax, with five ticks. */
export function svgColourBar(scaleMax: number, label: string): string {
  const w = 300;
  const h = 14;
  const stops = Array.from({ length: 11 }, (_, k) => k / 10)
    .map((t) => `<stop offset="${t}" stop-color="${rgb(heatmapColor(t))}"/>`)
    .join("");
  const ticks = Array.from({ length: 5 }, (_, k) => k / 4)
    .map(
      (t) =>
        `<line x1="${10 + t * w}" y1="${h + 4}" x2="${10 + t * w}" y2="${h + 8}" stroke="#333"/>` +
        `<text x="${10 + t * w}" y="${h + 20}" text-anchor="middle">${(t * scaleMax).toFixed(3)}</text>`,
    )
    .join("");
  return (
    `<svg class="colour-bar" xmlns="http://www.w3.org/2000/svg" width="${w + 20}" height="${h + 40}" font-size="${FONT}" font-family="system-ui,sans-serif" data-scale-max="${scaleMax}">` +
    `<defs><linearGradient id="colour-scale">${stops}</linearGradient></defs>` +
    `<rect x="10" y="4" width="${w}" height="${h}" fill="url(#colour-scale)" stroke="#888"/>${ticks}` +
    `<text x="10" y="${h + 36}">${escapeHtml(label)}</text></svg>`
  );
}

export interface GapBar {
  label: string;
  /** Share of the gap from the means over tasks; undefined without a gap. */
  share: number | undefined;
  /** Each task's own share (undefined where that task has no gap). */
  perTask: (number | undefined)[];
}

/** Axis range of the gap chart; points beyond it are drawn at the edge as open circles. */
const GAP_MIN = -0.5;
const GAP_MAX = 1.5;

/**
 * Horizontal bars of the share of the base → trained gap each row closes, with one dot per task,
 * so a reader sees whether a mean comes from every task or from a few.
 */
export function svgGapChart(bars: GapBar[], title: string): string {
  const left = Math.ceil(Math.max(...bars.map((b) => b.label.length), 1) * CHAR) + 10;
  const plot = 560;
  const rowH = 18;
  const top = 34;
  const height = top + bars.length * rowH + 30;
  const width = left + plot + 60;
  const x = (v: number) =>
    left + ((Math.min(GAP_MAX, Math.max(GAP_MIN, v)) - GAP_MIN) / (GAP_MAX - GAP_MIN)) * plot;
  const parts = [
    `<svg class="gap-chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-size="${FONT}" font-family="system-ui,sans-serif">`,
    `<text x="${left}" y="14" font-weight="bold">${escapeHtml(title)}</text>`,
  ];
  for (const t of [-0.5, 0, 0.5, 1, 1.5]) {
    parts.push(
      `<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${top + bars.length * rowH}" stroke="${t === 0 || t === 1 ? "#555" : "#ddd"}"/>`,
      `<text x="${x(t)}" y="${top - 10}" text-anchor="middle">${Math.round(t * 100)}%</text>`,
    );
  }
  for (const [i, b] of bars.entries()) {
    const y = top + i * rowH;
    parts.push(
      `<text class="bar-label" x="${left - 6}" y="${y + 12}" text-anchor="end">${escapeHtml(b.label)}</text>`,
    );
    if (b.share !== undefined) {
      const x0 = x(0);
      const x1 = x(b.share);
      parts.push(
        `<rect class="bar" x="${Math.min(x0, x1)}" y="${y + 3}" width="${Math.abs(x1 - x0)}" height="${rowH - 6}" fill="#8fa8d8"><title>${escapeHtml(`${b.label}: ${Math.round(b.share * 100)}%`)}</title></rect>`,
      );
    }
    for (const p of b.perTask) {
      if (p === undefined) continue;
      const outside = p < GAP_MIN || p > GAP_MAX;
      parts.push(
        `<circle class="task-point" cx="${x(p)}" cy="${y + rowH / 2}" r="2.5" fill="${outside ? "none" : "#223"}" stroke="#223"><title>${Math.round(p * 100)}%</title></circle>`,
      );
    }
  }
  parts.push(
    `<text x="${left}" y="${height - 8}">bar: from the means over tasks; dots: each task (open: beyond the axis, drawn at its edge); 100% = the tasks' own trained adapters</text>`,
    "</svg>",
  );
  return parts.join("");
}
