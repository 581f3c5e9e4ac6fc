import { throwIfAborted, usageError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { f32ToF16, numel } from "./dtypes.js";

/**
 * GGUF v3 (llama.cpp's model file), little endian: magic, version, tensor count, metadata count,
 * typed key/values, tensor infos, then the tensor data, each tensor aligned to `general.alignment`
 * (32 by default) relative to the start of the data section.
 */
export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value type ids, as in the GGUF spec. */
export const GGUF_VALUE_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntType = "u64" | "i64";
export type GgufScalarType = GgufNumberType | GgufBigIntType | "bool" | "string";

/** A typed metadata value: the type is kept so that a file read back writes the same bytes. */
export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: GgufNumberType; value: number[] }
  | { type: "array"; itemType: GgufBigIntType; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] }
  | { type: "array"; itemType: "string"; value: string[] };

export type GgufMetadata = Record<string, GgufValue>;

/**
 * ggml tensor types: id, elements per block and bytes per block (checked against the ggml of
 * node-llama-cpp 3.21.1). The reader needs sizes of every type to bounds-check any file; the
 * writer and the data reader handle only the float types.
 */
export const GGML_TYPES: Record<string, { id: number; blockSize: number; typeSize: number }> = {
  F32: { id: 0, blockSize: 1, typeSize: 4 },
  F16: { id: 1, blockSize: 1, typeSize: 2 },
  Q4_0: { id: 2, blockSize: 32, typeSize: 18 },
  Q4_1: { id: 3, blockSize: 32, typeSize: 20 },
  Q5_0: { id: 6, blockSize: 32, typeSize: 22 },
  Q5_1: { id: 7, blockSize: 32, typeSize: 24 },
  Q8_0: { id: 8, blockSize: 32, typeSize: 34 },
  Q8_1: { id: 9, blockSize: 32, typeSize: 36 },
  Q2_K: { id: 10, blockSize: 256, typeSize: 84 },
  Q3_K: { id: 11, blockSize: 256, typeSize: 110 },
  Q4_K: { id: 12, blockSize: 256, typeSize: 144 },
  Q5_K: { id: 13, blockSize: 256, typeSize: 176 },
  Q6_K: { id: 14, blockSize: 256, typeSize: 210 },
  Q8_K: { id: 15, blockSize: 256, typeSize: 292 },
  IQ2_XXS: { id: 16, blockSize: 256, typeSize: 66 },
  IQ2_XS: { id: 17, blockSize: 256, typeSize: 74 },
  IQ3_XXS: { id: 18, blockSize: 256, typeSize: 98 },
  IQ1_S: { id: 19, blockSize: 256, typeSize: 50 },
  IQ4_NL: { id: 20, blockSize: 32, typeSize: 18 },
  IQ3_S: { id: 21, blockSize: 256, typeSize: 110 },
  IQ2_S: { id: 22, blockSize: 256, typeSize: 82 },
  IQ4_XS: { id: 23, blockSize: 256, typeSize: 136 },
  I8: { id: 24, blockSize: 1, typeSize: 1 },
  I16: { id: 25, blockSize: 1, typeSize: 2 },
  I32: { id: 26, blockSize: 1, typeSize: 4 },
  I64: { id: 27, blockSize: 1, typeSize: 8 },
  F64: { id: 28, blockSize: 1, typeSize: 8 },
  IQ1_M: { id: 29, blockSize: 256, typeSize: 56 },
  BF16: { id: 30, blockSize: 1, typeSize: 2 },
  TQ1_0: { id: 34, blockSize: 256, typeSize: 54 },
  TQ2_0: { id: 35, blockSize: 256, typeSize: 66 },
  MXFP4: { id: 39, blockSize: 32, typeSize: 17 },
};

export const GGML_TYPE_BY_ID: ReadonlyMap<number, { name: string; blockSize: number; typeSize: number }> =
  new Map(Object.entries(GGML_TYPES).map(([name, t]) => [t.id, { name, ...t }]));

/** Tensor types the writer produces from float32 data. */
export type GgufWriteType = "F32" | "F16";
/** Block-quantized types the writer stores as given, as ggml's raw blocks. */
export type GgufBlockType = "Q4_0";

export type GgufTensorToWrite = {
  name: string;
  /** GGUF order (`ne`): dims[0] is the row length, i.e. the reverse of a safetensors/numpy shape. */
  dims: number[];
} & (
  | {
      type: GgufWriteType;
      /** Produces the tensor's values (row-major, numel of them) when its turn to be written comes. */
      data: () => Promise<Float32Array> | Float32Array;
    }
  | {
      type: GgufBlockType;
      /** Produces the tensor's ggml blocks (ggufTensorBytes of them) when its turn comes. */
      blocks: () => Uint8Array;
    }
);

export interface WriteGgufOptions {
  metadata: GgufMetadata;
  tensors: GgufTensorToWrite[];
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export function ggufTensorBytes(type: GgufWriteType | GgufBlockType, dims: readonly number[]): number {
  const { blockSize, typeSize } = GGML_TYPES[type] as { blockSize: number; typeSize: number };
  return (numel(dims) / blockSize) * typeSize;
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/**
 * Writes a GGUF file atomically. Tensor data is produced one tensor at a time by each tensor's
 * `data()` so that a model larger than memory can be converted; the header (with every offset) is
 * computed first from the dims.
 */
export async function writeGguf(
  path: string,
  { metadata, tensors, signal, progress }: WriteGgufOptions,
): Promise<void> {
  const alignmentValue = metadata["general.alignment"];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignmentValue !== undefined) {
    if (
      alignmentValue.type !== "u32" ||
      alignmentValue.value <= 0 ||
      (alignmentValue.value & (alignmentValue.value - 1)) !== 0
    ) {
      throw usageError("general.alignment must be a u32 power of two");
    }
    alignment = alignmentValue.value;
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw usageError(`duplicate GGUF tensor name "${t.name}"`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
      throw usageError(
        `GGUF tensor "${t.name}": dims ${JSON.stringify(t.dims)} must be 1 to 4 positive integers`,
      );
    }
    const block = GGML_TYPES[t.type]?.blockSize ?? 1;
    if ((t.dims[0] as number) % block !== 0)
      throw usageError(
        `GGUF tensor "${t.name}": rows of ${t.dims[0]} are not whole ${t.type} blocks of ${block}`,
      );
  }
  const header = new ByteSink();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(BigInt(tensors.length));
  header.u64(BigInt(Object.keys(metadata).length));
  for (const [key, value] of Object.entries(metadata)) {
    header.string(key);
    writeValue(header, key, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(BigInt(d));
    header.u32(GGML_TYPES[t.type]?.id ?? 0);
    header.u64(BigInt(offset));
    offsets.push(offset);
    offset = alignUp(offset + ggufTensorBytes(t.type, t.dims), alignment);
  }
  const headerBytes = header.bytes();
  const padTo = alignUp(headerBytes.length, alignment);

  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield headerBytes;
    yield new Uint8Array(padTo - headerBytes.length);
    let written = 0;
    for (const [i, t] of tensors.entries()) {
      throwIfAborted(signal);
      const bytes = await tensorBytes(t);
      yield bytes;
      written += bytes.length;
      const next = i + 1 < tensors.length ? (offsets[i + 1] ?? 0) : alignUp(written, alignment);
      if (next > written) {
        yield new Uint8Array(next - written);
        written = next;
      }
      progress?.({ phase: "write gguf", done: i + 1, total: tensors.length, unit: "tensors" });
    }
  }
  await writeFileAtomic(path, chunks());
}

async function tensorBytes(t: GgufTensorToWrite): Promise<Uint8Array> {
  if (t.type === "Q4_0") {
    const blocks = t.blocks();
    const n = ggufTensorBytes(t.type, t.dims);
    if (blocks.length !== n)
      throw usageError(
        `GGUF tensor "${t.name}": got ${blocks.length} bytes of ${t.type} blocks, dims need ${n}`,
      );
    return blocks;
  }
  const values = await t.data();
  const n = numel(t.dims);
  if (values.length !== n) {
    throw usageError(
      `GGUF tensor "${t.name}": got ${values.length} values for dims ${JSON.stringify(t.dims)} (${n})`,
    );
  }
  return t.type === "F32" ? f32Bytes(values) : f16Bytes(values);
}

function f32Bytes(values: Float32Array): Uint8Array {
  // Little-endian hosts only (x86, ARM): the in-memory layout is the file's.
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function f16Bytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i] as number);
  return new Uint8Array(out.buffer);
}

function writeValue(sink: ByteSink, key: string, v: GgufValue): void {
  sink.u32(GGUF_VALUE_TYPE[v.type]);
  if (v.type === "array") {
    sink.u32(GGUF_VALUE_TYPE[v.itemType]);
    sink.u64(BigInt(v.value.length));
    for (const item of v.value) writeScalar(sink, key, v.itemType, item);
    return;
  }
  writeScalar(sink, key, v.type, v.value);
}

function writeScalar(
  sink: ByteSink,
  key: string,
  type: GgufScalarType,
  value: number | bigint | boolean | string,
): void {
  const bad = () => usageError(`GGUF metadata "${key}": ${String(value)} is not a valid ${type}`);
  if (type === "string") {
    if (typeof value !== "string") throw bad();
    sink.string(value);
    return;
  }
  if (type === "bool") {
    if (typeof value !== "boolean") throw bad();
    sink.u8(value ? 1 : 0);
    return;
  }
  if (type === "u64" || type === "i64") {
    if (typeof value !== "bigint") throw bad();
    if (type === "u64" ? BigInt.asUintN(64, value) !== value : BigInt.asIntN(64, value) !== value)
      throw bad();
    if (type === "u64") sink.u64(value);
    else sink.i64(value);
    return;
  }
  if (typeof value !== "number") throw bad();
  if (type !== "f32" && type !== "f64") {
    const [lo, hi] = INT_RANGE[type];
    if (!Number.isInteger(value) || value < lo || value > hi) throw bad();
  }
  // ByteSink's number writers are named after the GGUF types.
  sink[type](value);
}

const INT_RANGE = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
} as const;

/** A growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private length = 0;
  private static readonly encoder = new TextEncoder();

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    const at = this.reserve(1);
    this.view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.view.setInt32(at, v, true);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, v, true);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.view.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, true);
  }
  string(s: string): void {
    const bytes = ByteSink.encoder.encode(s);
    this.u64(BigInt(bytes.length));
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}
