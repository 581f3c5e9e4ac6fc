/**
 * Columns per cache pass: 4-row tiles of this many float32 values from every row (N·1 KB for
 * N rows) stay in L2 while all tile pairs reuse them.
 */
const COLUMN_CHUNK = 256;

/**
 * g += x·xᵀ on the upper triangle, for the 4-row tiles starting at the rows in `tileRows` (each a
 * multiple of 4) against every tile at or after them. x holds `rows` rows (a multiple of 4) of
 * `stride` float32 values, of which the first `width` are used; g is rows×rows float64.
 *
 * A 4×4 register tile does 16 multiply-adds per 8 loads, which is what makes plain JS reach
 * ~3 GFLOP/s per core; products and sums are float64 (JS numbers), so each G entry is an exact
 * float64 accumulation of float32 products.
 */
export function accumulateGram(
  x: Float32Array,
  rows: number,
  stride: number,
  width: number,
  g: Float64Array,
  tileRows: readonly number[],
): void {
  for (let c0 = 0; c0 < width; c0 += COLUMN_CHUNK) {
    const c1 = Math.min(width, c0 + COLUMN_CHUNK);
    for (const i0 of tileRows) {
      const a0 = i0 * stride;
      const a1 = a0 + stride;
      const a2 = a1 + stride;
      const a3 = a2 + stride;
      for (let j0 = i0; j0 < rows; j0 += 4) {
        const b0 = j0 * stride;
        const b1 = b0 + stride;
        const b2 = b1 + stride;
        const b3 = b2 + stride;
        let s00 = 0,
          s01 = 0,
          s02 = 0,
          s03 = 0,
          s10 = 0,
          s11 = 0,
          s12 = 0,
          s13 = 0;
        let s20 = 0,
          s21 = 0,
          s22 = 0,
          s23 = 0,
          s30 = 0,
          s31 = 0,
          s32 = 0,
          s33 = 0;
        for (let k = c0; k < c1; k++) {
          const x0 = x[a0 + k] as number;
          const x1 = x[a1 + k] as number;
          const x2 = x[a2 + k] as number;
          const x3 = x[a3 + k] as number;
          const y0 = x[b0 + k] as number;
          const y1 = x[b1 + k] as number;
          const y2 = x[b2 + k] as number;
          const y3 = x[b3 + k] as number;
          s00 += x0 * y0;
          s01 += x0 * y1;
          s02 += x0 * y2;
          s03 += x0 * y3;
          s10 += x1 * y0;
          s11 += x1 * y1;
          s12 += x1 * y2;
          s13 += x1 * y3;
          s20 += x2 * y0;
          s21 += x2 * y1;
          s22 += x2 * y2;
          s23 += x2 * y3;
          s30 += x3 * y0;
          s31 += x3 * y1;
          s32 += x3 * y2;
          s33 += x3 * y3;
        }
        let r = i0 * rows + j0;
        g[r] = (g[r] as number) + s00;
        g[r + 1] = (g[r + 1] as number) + s01;
        g[r + 2] = (g[r + 2] as number) + s02;
        g[r + 3] = (g[r + 3] as number) + s03;
        r += rows;
        g[r] = (g[r] as number) + s10;
        g[r + 1] = (g[r + 1] as number) + s11;
        g[r + 2] = (g[r + 2] as number) + s12;
        g[r + 3] = (g[r + 3] as number) + s13;
        r += rows;
        g[r] = (g[r] as number) + s20;
        g[r + 1] = (g[r + 1] as number) + s21;
        g[r + 2] = (g[r + 2] as number) + s22;
        g[r + 3] = (g[r + 3] as number) + s23;
        r += rows;
        g[r] = (g[r] as number) + s30;
        g[r + 1] = (g[r + 1] as number) + s31;
        g[r + 2] = (g[r + 2] as number) + s32;
        g[r + 3] = (g[r + 3] as number) + s33;
      }
    }
  }
}

/** Splits tile rows between workers so each gets about the same number of tile pairs. */
export function balanceTileRows(rows: number, tileRowLimit: number, workers: number): number[][] {
  const parts: number[][] = Array.from({ length: workers }, () => []);
  const load = new Array<number>(workers).fill(0);
  // Costs fall with the row (fewer tiles to the right), so greedy from the top balances well.
  for (let i0 = 0; i0 < tileRowLimit; i0 += 4) {
    let best = 0;
    for (let w = 1; w < workers; w++) if ((load[w] as number) < (load[best] as number)) best = w;
    (parts[best] as number[]).push(i0);
    load[best] = (load[best] as number) + (rows - i0) / 4;
  }
  return parts;
}
