import { gramModuleBytes, KERNEL_SHAPE, type KernelShape, PANEL_PITCH } from "./gramWasm.js";

/** Columns per panel: one panel row fills the kernel's pitch. */
const PANEL_COLUMNS = PANEL_PITCH / 4;
const PAGE = 65536;

/**
 * g += x·xᵀ over the upper triangle, for the 4-row tiles starting at `tileRows` (multiples of 4)
 * against every tile at or after them; g (rows×rows float64) lives in the kernel's memory.
 *
 * Each 256-column slice of the rows is first copied into a packed panel (256 rows of it fit in L2,
 * and the kernel addresses rows at a constant pitch), padded with zeros to whole SIMD steps.
 */
export class GramAccumulator {
  private readonly strip: (
    i: number,
    j: number,
    rows: number,
    kBytes: number,
    panel: number,
    g: number,
  ) => void;
  private readonly memory: WebAssembly.Memory;
  private readonly panel: Float32Array;
  private readonly gOffset: number;
  private readonly firstRow: number;
  private readonly step: number;

  constructor(
    private readonly rows: number,
    private readonly tileRows: readonly number[],
    private readonly shape: KernelShape = KERNEL_SHAPE,
  ) {
    this.gOffset = rows * PANEL_PITCH;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((this.gOffset + rows * rows * 8) / PAGE) });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(gramModuleBytes(shape)), {
      env: { memory: this.memory },
    });
    this.strip = instance.exports.strip as GramAccumulator["strip"];
    this.panel = new Float32Array(this.memory.buffer, 0, rows * PANEL_COLUMNS);
    this.firstRow = Math.min(rows, ...tileRows);
    this.step = (shape.f64 ? 2 : 4) * shape.unroll;
  }

  /** Adds the products of the first `width` columns of x (rows × stride float32). */
  add(x: Float32Array, stride: number, width: number): void {
    const { rows, panel, firstRow } = this;
    for (let c0 = 0; c0 < width; c0 += PANEL_COLUMNS) {
      const columns = Math.min(PANEL_COLUMNS, width - c0);
      const padded = Math.ceil(columns / this.step) * this.step;
      // Rows above the first tile row are never read by this accumulator's strips.
      for (let r = firstRow; r < rows; r++) {
        const at = r * PANEL_COLUMNS;
        panel.set(x.subarray(r * stride + c0, r * stride + c0 + columns), at);
        if (padded > columns) panel.fill(0, at + columns, at + padded);
      }
      for (const i0 of this.tileRows)
        for (let i = i0; i < i0 + 4; i += this.shape.rows)
          this.strip(i, i0, rows, padded * 4, 0, this.gOffset);
    }
  }

  /** A copy of the accumulated float64 matrix. */
  result(): Float64Array {
    return new Float64Array(this.memory.buffer, this.gOffset, this.rows * this.rows).slice();
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
