/**
 * The WebAssembly SIMD micro-kernel of the Gram matrix, emitted as module bytes here rather than
 * assembled from a .wat: the build is plain `tsc`, which would not carry a .wasm file into dist,
 * and no assembler is needed as a dependency.
 */

/** Bytes between consecutive rows of the packed column panel the kernel reads. */
export const PANEL_PITCH = 1024;

export interface KernelShape {
  /** Rows of the strip one call multiplies (the register tile's height). */
  rows: number;
  /** Rows of the panel multiplied against the strip at a time (the register tile's width). */
  cols: number;
  /** 16-byte steps per pass of the inner loop. */
  unroll: number;
  f64?: boolean;
}

/**
 * 4 strip rows × 2 columns: 8 accumulators + 4 strip vectors + 1 column vector + 1 product fit the
 * 16 SIMD registers V8 uses on x64, where 4×4 spills.
 */
export const KERNEL_SHAPE: KernelShape = { rows: 4, cols: 2, unroll: 1 };

const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...Buffer.from(s, "utf8")].map((b) => [b]));

const get = (l: number) => [0x20, ...uleb(l)];
const set = (l: number) => [0x21, ...uleb(l)];
const tee = (l: number) => [0x22, ...uleb(l)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = [0x6a];
const I32_MUL = [0x6c];
const I32_LT_U = [0x49];
const F64_ADD = [0xa0];
const f64Load = (offset: number) => [0x2b, 3, ...uleb(offset)];
const f64Store = (offset: number) => [0x39, 3, ...uleb(offset)];
const simd = (code: number, ...immediates: number[]) => [0xfd, ...uleb(code), ...immediates];
const v128Load = (offset: number) => simd(0x00, 4, ...uleb(offset));
const V128_ZERO = simd(0x0c, ...new Array<number>(16).fill(0));
/** The upper two f32 lanes moved down, for the second promotion. */
const HIGH_HALF = simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F64X2_ADD = simd(0xf0);
const F64X2_PROMOTE_LOW = simd(0x5f);
const f64x2Lane = (lane: number) => simd(0x21, lane);
const loop = (body: number[]) => [0x03, 0x40, ...body, 0x0b];

/**
 * `strip(i, j, rows, kBytes, panel, g)`: for the strip rows i..i+R−1 of the panel, and each group
 * of C panel rows from j up to `rows`, adds their dot products over the first kBytes/4 columns into
 * the rows×rows float64 matrix at byte offset g. Products are summed in float32 lanes over one
 * panel (at most PANEL_PITCH/16 terms per lane) and those sums added into G in float64.
 */
export function gramModuleBytes({ rows: R, cols: C, unroll: U, f64 = false }: KernelShape = KERNEL_SHAPE): Uint8Array {
  const W = f64 ? 8 : 16;
  const load = (offset: number) => (f64 ? [...simd(0x5d, 3, ...uleb(offset)), ...F64X2_PROMOTE_LOW] : v128Load(offset));
  const MUL = f64 ? simd(0xf2) : F32X4_MUL;
  const ADD = f64 ? F64X2_ADD : F32X4_ADD;
  const [pI, pJ, pRows, pKBytes, pPanel, pG] = [0, 1, 2, 3, 4, 5];
  const [lA, lB, lK, lGRow, lRowBytes] = [6, 7, 8, 9, 10];
  const acc = (r: number, c: number) => 11 + r * C + c;
  const va = (r: number) => 11 + R * C + r;
  const vb = 11 + R * C + R;
  const vs = vb + 1;

  const step: number[] = [];
  for (let u = 0; u < U; u++) {
    for (let r = 0; r < R; r++)
      step.push(...get(lA), ...get(lK), ...I32_ADD, ...load(r * PANEL_PITCH + u * W), ...set(va(r)));
    for (let c = 0; c < C; c++) {
      step.push(...get(lB), ...get(lK), ...I32_ADD, ...load(c * PANEL_PITCH + u * W), ...set(vb));
      for (let r = 0; r < R; r++) {
        step.push(
          ...get(acc(r, c)),
          ...get(va(r)),
          ...get(vb),
          ...F32X4_MUL,
          ...F32X4_ADD,
          ...set(acc(r, c)),
        );
      }
    }
  }
  const flush: number[] = [];
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const a = acc(r, c);
      flush.push(
        ...get(lGRow),
        ...get(lGRow),
        ...f64Load(c * 8),
        ...(f64 ? get(a) : [...get(a), ...F64X2_PROMOTE_LOW, ...get(a), ...get(a), ...HIGH_HALF, ...F64X2_PROMOTE_LOW, ...F64X2_ADD]),
        ...tee(vs),
        ...f64x2Lane(0),
        ...get(vs),
        ...f64x2Lane(1),
        ...F64_ADD,
        ...F64_ADD,
        ...f64Store(c * 8),
      );
    }
    flush.push(...get(lGRow), ...get(lRowBytes), ...I32_ADD, ...set(lGRow));
  }
  const zero: number[] = [];
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) zero.push(...V128_ZERO, ...set(acc(r, c)));

  const body = [
    ...get(pPanel),
    ...get(pI),
    ...i32(PANEL_PITCH),
    ...I32_MUL,
    ...I32_ADD,
    ...set(lA),
    ...get(pRows),
    ...i32(8),
    ...I32_MUL,
    ...set(lRowBytes),
    ...loop([
      ...get(pPanel),
      ...get(pJ),
      ...i32(PANEL_PITCH),
      ...I32_MUL,
      ...I32_ADD,
      ...set(lB),
      ...zero,
      ...i32(0),
      ...set(lK),
      ...loop([
        ...step,
        ...get(lK),
        ...i32(16 * U),
        ...I32_ADD,
        ...tee(lK),
        ...get(pKBytes),
        ...I32_LT_U,
        0x0d,
        0,
      ]),
      // gRow = g + (i·rows + j)·8: the strip's first row at column j.
      ...get(pG),
      ...get(pI),
      ...get(pRows),
      ...I32_MUL,
      ...get(pJ),
      ...I32_ADD,
      ...i32(8),
      ...I32_MUL,
      ...I32_ADD,
      ...set(lGRow),
      ...flush,
      ...get(pJ),
      ...i32(C),
      ...I32_ADD,
      ...tee(pJ),
      ...get(pRows),
      ...I32_LT_U,
      0x0d,
      0,
    ]),
    0x0b,
  ];
  const locals = vec([
    [...uleb(5), I32],
    [...uleb(R * C + R + 2), V128],
  ]);
  const code = [...locals, ...body];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec(new Array<number[]>(6).fill([I32])), ...vec([])]])),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...name("strip"), 0x00, ...uleb(0)]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}
