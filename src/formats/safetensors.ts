/**
 * safetensors, read and written by hand: the format is an 8-byte length, a JSON header and raw
 * little-endian tensor bytes, and no npm package reads it lazily into caller buffers while
 * validating every offset (the format's files come from strangers: each field is checked before use).
 */
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { formatError, inputError } from "../errors.js";
import { tempPathFor } from "../util/atomic.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtypes.js";

/** A crafted header length must not make us allocate gigabytes; real adapter headers are a few KB. */
export const MAX_HEADER_LENGTH = 100_000_000;

export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const FLOAT_DTYPES = new Set<SafetensorsDtype>(["F64", "F32", "F16", "BF16"]);

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** Where tensor data starts: 8 + header length. */
  dataOffset: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validates a header's JSON against the file it came from; every problem names file and tensor. */
export function parseSafetensorsHeader(path: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const dataOffset = 8 + headerBytes.byteLength;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw formatError(path, `safetensors header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw formatError(path, "safetensors header is not a JSON object");
  }
  const dataSize = fileSize - dataOffset;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = checkMetadata(path, value);
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw formatError(path, `${where}: entry is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPE_SIZE)) {
      throw formatError(path, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw formatError(path, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw formatError(path, `${where}: data_offsets ${JSON.stringify(offsets)} are not two ordered integers`);
    }
    const [start, stop] = offsets as [number, number];
    const bytes = numel(shape) * DTYPE_SIZE[dtype as SafetensorsDtype];
    if (!Number.isSafeInteger(bytes) || bytes !== stop - start) {
      throw formatError(
        path,
        `${where}: shape ${JSON.stringify(shape)} × ${dtype} is ${bytes} bytes but data_offsets span ${stop - start}`,
      );
    }
    if (stop > dataSize) {
      throw formatError(
        path,
        `${where}: ends at data byte ${stop}, beyond the data area of ${dataSize} bytes (file ${fileSize} bytes)`,
      );
    }
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      begin: dataOffset + start,
      end: dataOffset + stop,
    });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw formatError(
        path,
        `tensor "${cur.name}" (bytes ${cur.begin - dataOffset}-${cur.end - dataOffset}) overlaps tensor "${prev.name}" (bytes ${prev.begin - dataOffset}-${prev.end - dataOffset})`,
      );
    }
  }
  return { path, fileSize, dataOffset, tensors, metadata };
}

function checkMetadata(path: string, value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw formatError(path, "__metadata__ is not a string-to-string map");
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw formatError(path, `__metadata__ "${k}" is not a string`);
  }
  return value as Record<string, string>;
}

async function readHeaderFrom(handle: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileSize = (await handle.stat()).size;
  if (fileSize < 8) throw formatError(path, `file is ${fileSize} bytes, shorter than the 8-byte safetensors prefix`);
  const prefix = Buffer.alloc(8);
  await handle.read(prefix, 0, 8, 0);
  const length = prefix.readBigUInt64LE(0);
  if (length > BigInt(MAX_HEADER_LENGTH)) {
    throw formatError(path, `safetensors header length ${length} exceeds the limit of ${MAX_HEADER_LENGTH} bytes`);
  }
  if (8n + length > BigInt(fileSize)) {
    throw formatError(path, `safetensors header length ${length} exceeds the file's ${fileSize - 8} bytes after the prefix`);
  }
  const headerBytes = Buffer.alloc(Number(length));
  await handle.read(headerBytes, 0, headerBytes.length, 8);
  return parseSafetensorsHeader(path, headerBytes, fileSize);
}

export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openFile(path);
  try {
    return await readHeaderFrom(handle, path);
  } finally {
    await handle.close();
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw inputError(path, code === "ENOENT" ? "no such file" : `cannot open (${code})`, error);
  }
}

/** Reads tensors one at a time into caller buffers; `await using r = await SafetensorsReader.open(p)`. */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  readonly #handle: FileHandle;
  /** Reused for F16/BF16/F64 conversion so streaming a bank does not allocate per tensor. */
  #scratch = new Uint8Array(0);

  private constructor(handle: FileHandle, header: SafetensorsHeader) {
    this.#handle = handle;
    this.header = header;
  }

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await openFile(path);
    try {
      return new SafetensorsReader(handle, await readHeaderFrom(handle, path));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw formatError(this.header.path, `no tensor "${name}"`);
    return info;
  }

  /** The tensor's raw bytes into `out` (exactly its byte length). */
  async readBytes(name: string, out?: Uint8Array): Promise<Uint8Array> {
    const info = this.info(name);
    const size = info.end - info.begin;
    const buf = out ?? new Uint8Array(size);
    if (buf.byteLength !== size) {
      throw new RangeError(`buffer of ${buf.byteLength} bytes for tensor "${name}" of ${size} bytes`);
    }
    let done = 0;
    while (done < size) {
      const { bytesRead } = await this.#handle.read(buf, done, size - done, info.begin + done);
      if (bytesRead === 0) throw formatError(this.header.path, `tensor "${name}": file ended while reading`);
      done += bytesRead;
    }
    return buf;
  }

  /** A float tensor as float32, into `out` when given (exactly numel elements). */
  async readF32(name: string, out?: Float32Array): Promise<Float32Array> {
    const info = this.info(name);
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw formatError(this.header.path, `tensor "${name}" has dtype ${info.dtype}, not a float type`);
    }
    const n = numel(info.shape);
    const dst = out ?? new Float32Array(n);
    if (dst.length !== n) throw new RangeError(`buffer of ${dst.length} floats for tensor "${name}" of ${n}`);
    if (info.dtype === "F32") {
      await this.readBytes(name, new Uint8Array(dst.buffer, dst.byteOffset, n * 4));
      return dst;
    }
    const size = info.end - info.begin;
    if (this.#scratch.byteLength < size) this.#scratch = new Uint8Array(size);
    const raw = await this.readBytes(name, this.#scratch.subarray(0, size));
    const view = new DataView(raw.buffer, raw.byteOffset, size);
    if (info.dtype === "F64") for (let i = 0; i < n; i++) dst[i] = view.getFloat64(i * 8, true);
    else if (info.dtype === "F16") for (let i = 0; i < n; i++) dst[i] = f16ToF32(view.getUint16(i * 2, true));
    else for (let i = 0; i < n; i++) dst[i] = bf16ToF32(view.getUint16(i * 2, true));
    return dst;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export type WritableDtype = "F32" | "F16" | "BF16" | "F64";

export interface TensorSpec {
  name: string;
  dtype: WritableDtype;
  shape: number[];
}

export interface TensorToWrite extends TensorSpec {
  data: Float32Array | Float64Array;
}

function encodeHeader(specs: readonly TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const s of specs) {
    const bytes = numel(s.shape) * DTYPE_SIZE[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  // Pad with spaces so tensor data starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

function encodeTensor(spec: TensorSpec, data: Float32Array | Float64Array): Uint8Array {
  const n = numel(spec.shape);
  if (data.length !== n) {
    throw new RangeError(`tensor "${spec.name}": ${data.length} values for shape ${JSON.stringify(spec.shape)}`);
  }
  if (spec.dtype === "F32" && data instanceof Float32Array) {
    return new Uint8Array(data.buffer, data.byteOffset, n * 4);
  }
  const out = new Uint8Array(n * DTYPE_SIZE[spec.dtype]);
  const view = new DataView(out.buffer);
  switch (spec.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) view.setFloat32(i * 4, data[i]!, true);
      break;
    case "F64":
      for (let i = 0; i < n; i++) view.setFloat64(i * 8, data[i]!, true);
      break;
    case "F16":
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToF16(data[i]!), true);
      break;
    case "BF16":
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToBf16(data[i]!), true);
      break;
    default:
      spec.dtype satisfies never;
  }
  return out;
}

/**
 * Writes a safetensors file whose tensors are produced one at a time (`produce(i)` for specs[i]),
 * so a large output never needs all its tensors in memory. Atomic: temp file, fsync, rename.
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: readonly TensorSpec[],
  produce: (index: number) => Promise<Float32Array | Float64Array> | Float32Array | Float64Array,
  metadata?: Record<string, string>,
): Promise<void> {
  const tmp = tempPathFor(path);
  const handle = await open(tmp, "w");
  try {
    await handle.write(encodeHeader(specs, metadata));
    for (let i = 0; i < specs.length; i++) {
      await handle.write(encodeTensor(specs[i]!, await produce(i)));
    }
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  }
}

export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  await writeSafetensorsStreaming(path, tensors, (i) => tensors[i]!.data, metadata);
}
