import { gramKernel, PANEL_PITCH, type StripKernel } from "./gramWasm.js";

/** Columns per panel: one panel row fills the kernel's pitch. */
const PANEL_COLUMNS = PANEL_PITCH / 4;

/**
 * g += x·xᵀ over the upper triangle, for the 4-row tiles starting at `tileRows` (multiples of 4)
 * against every tile at or after them, with the WebAssembly SIMD kernel of gramWasm.ts (exact
 * float32 products summed in float64). g (rows×rows) lives in the kernel's memory.
 *
 * Each 256-column slice of the rows is first copied into a packed panel: rows PANEL_PITCH apart
 * let the kernel address them with constant offsets, and 256 rows of it (256 KB) stay in L2 while
 * every strip streams through it.
 */
export class GramAccumulator {
  private readonly strip: StripKernel;
  private readonly buffer: ArrayBuffer;
  private readonly panel: Float32Array;
  private readonly gOffset: number;
  private readonly firstRow: number;

  constructor(
    private readonly rows: number,
    private readonly tileRows: readonly number[],
  ) {
    this.gOffset = rows * PANEL_PITCH;
    ({ strip: this.strip, buffer: this.buffer } = gramKernel(this.gOffset + rows * rows * 8));
    this.panel = new Float32Array(this.buffer, 0, rows * PANEL_COLUMNS);
    this.firstRow = Math.min(rows, ...tileRows);
  }

  /** Adds the products of the first `width` columns of x (`rows` rows, `stride` float32 apart). */
  add(x: Float32Array, stride: number, width: number): void {
    const { rows, panel, firstRow } = this;
    for (let c0 = 0; c0 < width; c0 += PANEL_COLUMNS) {
      const columns = Math.min(PANEL_COLUMNS, width - c0);
      // The kernel steps two columns at a time: an odd tail gets a zero partner.
      const padded = columns + (columns % 2);
      // Rows above the first tile row are never read by this accumulator's strips.
      for (let r = firstRow; r < rows; r++) {
        const at = r * PANEL_COLUMNS;
        panel.set(x.subarray(r * stride + c0, r * stride + c0 + columns), at);
        if (padded > columns) panel[at + columns] = 0;
      }
      for (const i0 of this.tileRows) this.strip(i0, i0, rows, padded * 4, 0, this.gOffset);
    }
  }

  /** A copy of the accumulated matrix: set only in the accumulated tile rows, from their diagonal tile on. */
  result(): Float64Array<ArrayBuffer> {
    return new Float64Array(this.buffer, this.gOffset, this.rows * this.rows).slice();
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
