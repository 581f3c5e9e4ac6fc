/**
 * The WebAssembly SIMD micro-kernel of the Gram matrix, emitted as module bytes here rather than
 * assembled from a .wat: the build is plain `tsc`, which would not carry a .wasm file into dist,
 * and no assembler is needed as a dependency.
 */

/** Bytes between consecutive rows of the packed column panel the kernel reads. */
export const PANEL_PITCH = 1024;
/** Strip rows per call: one 4-row tile of gramKernel.ts. */
const STRIP_ROWS = 4;
/**
 * Panel rows multiplied against the strip at a time: 4×2 float64x2 accumulators + 4 strip vectors
 * + 1 panel vector + 1 product fit the 16 SIMD registers V8 uses on x64; 4×4 spills and measured
 * no faster, 2×4 and 2×2 no faster either, and unrolling the column loop was slower.
 */
const STRIP_COLS = 2;

/** The part of the WebAssembly global used here: the project's lib (ES2023, no DOM) does not declare it. */
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
const PAGE = 65536;

export type StripKernel = (
  i: number,
  j: number,
  rows: number,
  kBytes: number,
  panel: number,
  g: number,
) => void;

/** Compiled once per thread; every kernel instance gets its own memory. */
let compiled: object | undefined;

/** The kernel over a fresh zeroed memory of at least `bytes` bytes (which never grows). */
export function gramKernel(bytes: number): { strip: StripKernel; buffer: ArrayBuffer } {
  const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE)) });
  compiled ??= new wasm.Module(gramModuleBytes());
  const instance = new wasm.Instance(compiled, { env: { memory } });
  return { strip: instance.exports.strip as StripKernel, buffer: memory.buffer };
}

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
const loop = (body: number[]) => [0x03, 0x40, ...body, 0x0b];
const BR_IF_LOOP = [0x0d, 0];
const END = [0x0b];
const I32_ADD = [0x6a];
const I32_MUL = [0x6c];
const I32_LT_U = [0x49];
const F64_ADD = [0xa0];
const f64Load = (offset: number) => [0x2b, 3, ...uleb(offset)];
const f64Store = (offset: number) => [0x39, 3, ...uleb(offset)];
const simd = (code: number, ...immediates: number[]) => [0xfd, ...uleb(code), ...immediates];
/** Two float32 at address + offset, widened to float64x2 (v128.load64_zero, f64x2.promote_low_f32x4). */
const loadPair = (offset: number) => [...simd(0x5d, 3, ...uleb(offset)), ...simd(0x5f)];
const V128_ZERO = simd(0x0c, ...new Array<number>(16).fill(0));
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const f64x2Lane = (lane: number) => simd(0x21, lane);

/**
 * `strip(i, j, rows, kBytes, panel, g)`: for the panel rows i..i+3 (panel at byte offset `panel`,
 * rows PANEL_PITCH bytes apart) and every panel row from j up to `rows`, adds their dot products
 * over the first kBytes/4 columns into the rows×rows float64 matrix at byte offset g. Both loops
 * test at their end, so j < rows, rows − j even and kBytes a positive multiple of 8 are required.
 *
 * float32 values are widened before multiplying, so every product is exact in float64 and G is a
 * float64 sum as precise as a scalar float64 loop (only the summation order differs: the even
 * and odd columns are summed in separate lanes).
 */
function gramModuleBytes(): Uint8Array {
  const R = STRIP_ROWS;
  const C = STRIP_COLS;
  const [pI, pJ, pRows, pKBytes, pPanel, pG] = [0, 1, 2, 3, 4, 5];
  const [lA, lB, lK, lGRow, lRowBytes] = [6, 7, 8, 9, 10];
  const acc = (r: number, c: number) => 11 + r * C + c;
  const va = (r: number) => 11 + R * C + r;
  const vb = 11 + R * C + R;
  const vs = vb + 1;

  const step: number[] = [];
  for (let r = 0; r < R; r++)
    step.push(...get(lA), ...get(lK), ...I32_ADD, ...loadPair(r * PANEL_PITCH), ...set(va(r)));
  for (let c = 0; c < C; c++) {
    step.push(...get(lB), ...get(lK), ...I32_ADD, ...loadPair(c * PANEL_PITCH), ...set(vb));
    for (let r = 0; r < R; r++) {
      step.push(...get(acc(r, c)), ...get(va(r)), ...get(vb), ...F64X2_MUL, ...F64X2_ADD, ...set(acc(r, c)));
    }
  }
  const zero: number[] = [];
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) zero.push(...V128_ZERO, ...set(acc(r, c)));
  // g[i+r][j+c] += lane 0 + lane 1, row by row from gRow.
  const flush: number[] = [];
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      flush.push(
        ...get(lGRow),
        ...get(lGRow),
        ...f64Load(c * 8),
        ...get(acc(r, c)),
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

  const body = [
    ...[...get(pPanel), ...get(pI), ...i32(PANEL_PITCH), ...I32_MUL, ...I32_ADD, ...set(lA)],
    ...[...get(pRows), ...i32(8), ...I32_MUL, ...set(lRowBytes)],
    ...loop([
      ...[...get(pPanel), ...get(pJ), ...i32(PANEL_PITCH), ...I32_MUL, ...I32_ADD, ...set(lB)],
      ...zero,
      ...[...i32(0), ...set(lK)],
      ...loop([
        ...step,
        ...get(lK),
        ...i32(8),
        ...I32_ADD,
        ...tee(lK),
        ...get(pKBytes),
        ...I32_LT_U,
        ...BR_IF_LOOP,
      ]),
      // gRow = g + (i·rows + j)·8
      ...[...get(pG), ...get(pI), ...get(pRows), ...I32_MUL, ...get(pJ), ...I32_ADD, ...i32(8), ...I32_MUL],
      ...[...I32_ADD, ...set(lGRow)],
      ...flush,
      ...[...get(pJ), ...i32(C), ...I32_ADD, ...tee(pJ), ...get(pRows), ...I32_LT_U, ...BR_IF_LOOP],
    ]),
    ...END,
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
