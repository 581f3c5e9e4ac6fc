import { encodePng } from "./png.js";

/** Viridis at 9 evenly spaced stops: perceptually uniform and readable in greyscale and by most colour-blind readers. */
const STOPS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [71, 45, 123],
  [59, 82, 139],
  [44, 114, 142],
  [33, 145, 140],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];
/** Cells of a target's own (masked) adapter, drawn apart from a weight of 0. */
export const MASKED_COLOR: readonly [number, number, number] = [160, 160, 160];
/** Images smaller than this many pixels a side get cells of several pixels. */
const TARGET_SIDE = 512;
const MAX_CELL = 32;

/** The colour of t ∈ [0, 1] (clamped) on the heatmap scale. */
export function heatmapColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i] as readonly number[];
  const b = STOPS[i + 1] as readonly number[];
  return [0, 1, 2].map((c) => Math.round((a[c] as number) + f * ((b[c] as number) - (a[c] as number)))) as [
    number,
    number,
    number,
  ];
}

export interface Heatmap {
  png: Buffer;
  width: number;
  height: number;
  /** Pixels per cell side. */
  cell: number;
  /** The weight drawn with the top colour; 0 is the bottom one. */
  max: number;
}

/**
 * The coefficient matrix as a PNG (the paper's Figure 1): `rows` × `cols` weights, row-major, rows =
 * targets, columns = candidates; colour ∝ weight / `scaleMax` (default: the largest weight; give
 * one value to several heatmaps so equal colours mean equal weights); cells where `masked(r, c)`
 * (a target's own adapter) are grey.
 */
export function coefficientHeatmap(
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  masked: (row: number, col: number) => boolean = () => false,
  scaleMax?: number,
): Heatmap {
  if (values.length !== rows * cols) {
    throw new RangeError(`coefficientHeatmap: ${values.length} values for ${rows}×${cols}`);
  }
  const max = scaleMax ?? largest(values);
  const cell = Math.max(1, Math.min(MAX_CELL, Math.floor(TARGET_SIDE / Math.max(rows, cols))));
  const width = cols * cell;
  const height = rows * cell;
  const rgb = new Uint8Array(width * height * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const color = masked(r, c)
        ? MASKED_COLOR
        : heatmapColor(max > 0 ? (values[r * cols + c] as number) / max : 0);
      for (let y = r * cell; y < (r + 1) * cell; y++) {
        for (let x = c * cell; x < (c + 1) * cell; x++) rgb.set(color, (y * width + x) * 3);
      }
    }
  }
  return { png: encodePng(width, height, rgb), width, height, cell, max };
}

/** The largest of `values` (0 when empty or all negative): the top of a heatmap's scale. */
export function largest(values: ArrayLike<number>): number {
  let max = 0;
  for (let k = 0; k < values.length; k++) max = Math.max(max, values[k] as number);
  return max;
}
