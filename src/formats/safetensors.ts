/**
 * safetensors, read and written by hand: the format is an 8-byte little-endian header length, a
 * JSON header and raw little-endian tensor bytes. No npm package reads it lazily, tensor by tensor,
 * into caller buffers while validating every offset; files come from strangers, so each field of
 * the header is checked before it is used.
 */
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { formatError, inputError, throwIfAborted } from "../errors.js";
import { tempPathFor } from "../util/atomic.js";
import { jsonKind } from "../util/jsonKind.js";
import type { ProgressSink } from "../util/progress.js";
import { forgetTemp } from "../util/scratch.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, numel } from "./dtypes.js";

/**
 * A crafted header length must not make us allocate gigabytes before we can refuse the file.
 * Real headers are small (a 500-tensor adapter's is ~60 KB); the reference implementation caps
 * them at 100 MB too, so every file it accepts we accept.
 */
export const MAX_HEADER_LENGTH = 100_000_000;

export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
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

/** The float dtypes: the ones read as float32 and the ones written. */
export type WritableDtype = "F32" | "F16" | "BF16" | "F64";
const FLOAT_DTYPES: ReadonlySet<SafetensorsDtype> = new Set<WritableDtype>(["F32", "F16", "BF16", "F64"]);

export function isFloatDtype(dtype: SafetensorsDtype): dtype is WritableDtype {
  return FLOAT_DTYPES.has(dtype);
}

/** Reading F32 straight into a Float32Array's bytes is only right when the host is little-endian too. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

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

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(DTYPE_SIZE, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates a header's JSON against the size of the file it came from; every problem names file and tensor. */
export function parseSafetensorsHeader(
  path: string,
  headerBytes: Uint8Array,
  fileSize: number,
): SafetensorsHeader {
  const dataOffset = 8 + headerBytes.byteLength;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw formatError(path, `safetensors header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(json)) {
    throw formatError(path, `safetensors header is ${jsonKind(json)}, not a JSON object`);
  }
  const dataSize = fileSize - dataOffset;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      metadata = checkMetadata(path, value);
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(value)) throw formatError(path, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (!isDtype(dtype)) throw formatError(path, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    // JSON numbers above 2^53 have already lost precision when parsed: isSafeInteger refuses them.
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw formatError(
        path,
        `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
      );
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw formatError(
        path,
        `${where}: data_offsets ${JSON.stringify(offsets)} are not two ordered integers`,
      );
    }
    const [start, stop] = offsets as [number, number];
    const bytes = numel(shape) * DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(bytes) || bytes !== stop - start) {
      throw formatError(
        path,
        `${where}: shape ${JSON.stringify(shape)} × ${dtype} is ${bytes} bytes but data_offsets span ${stop - start}`,
      );
    }
    if (stop > dataSize) {
      throw formatError(
        path,
        `${where}: data_offsets end at ${stop}, beyond the data area of ${dataSize} bytes (file ${fileSize} bytes)`,
      );
    }
    tensors.set(name, {
      name,
      dtype,
      shape: shape as number[],
      begin: dataOffset + start,
      end: dataOffset + stop,
    });
  }
  // Overlapping spans would let one tensor's writes alias another's: sorted by begin, each must start after the last ends.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1] as TensorInfo;
    const cur = sorted[i] as TensorInfo;
    if (cur.begin < prev.end) {
      throw formatError(
        path,
        `tensor "${cur.name}" (data bytes ${cur.begin - dataOffset}-${cur.end - dataOffset}) overlaps tensor "${prev.name}" (data bytes ${prev.begin - dataOffset}-${prev.end - dataOffset})`,
      );
    }
  }
  // The tensors must tile the data area exactly, as the reference implementation requires
  // (Metadata::validate: InvalidOffset for a gap, MetadataIncompleteBuffer for a tail), so that a
  // header length one byte short cannot shift every read.
  let covered = dataOffset;
  for (const t of sorted) {
    if (t.begin !== covered) {
      throw formatError(
        path,
        `data bytes ${covered - dataOffset}-${t.begin - dataOffset} belong to no tensor (before "${t.name}"); the header's length or offsets are wrong`,
      );
    }
    covered = t.end;
  }
  if (covered !== fileSize) {
    throw formatError(
      path,
      `the last ${fileSize - covered} data bytes belong to no tensor; the header's length or offsets are wrong`,
    );
  }
  return { path, fileSize, dataOffset, tensors, metadata };
}

function checkMetadata(path: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) throw formatError(path, "__metadata__ is not a string-to-string map");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw formatError(path, `__metadata__ "${k}" is ${jsonKind(v)}, not a string`);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Reads exactly `buf.byteLength` bytes at `position`, or fails naming what was being read. */
async function readFully(handle: FileHandle, buf: Uint8Array, position: number, path: string, what: string) {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await handle.read(buf, done, buf.byteLength - done, position + done);
    if (bytesRead === 0) {
      throw formatError(
        path,
        `${what}: file ended at byte ${position + done}, ${buf.byteLength - done} bytes short`,
      );
    }
    done += bytesRead;
  }
}

async function readHeaderFrom(handle: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileSize = (await handle.stat()).size;
  if (fileSize < 8)
    throw formatError(path, `file is ${fileSize} bytes, shorter than the 8-byte safetensors prefix`);
  const prefix = Buffer.alloc(8);
  await readFully(handle, prefix, 0, path, "safetensors prefix");
  const length = prefix.readBigUInt64LE(0);
  if (length > BigInt(MAX_HEADER_LENGTH)) {
    throw formatError(
      path,
      `safetensors header length ${length} exceeds the limit of ${MAX_HEADER_LENGTH} bytes`,
    );
  }
  if (8n + length > BigInt(fileSize)) {
    throw formatError(
      path,
      `safetensors header length ${length} exceeds the ${fileSize - 8} bytes after the prefix`,
    );
  }
  const headerBytes = Buffer.alloc(Number(length));
  await readFully(handle, headerBytes, 8, path, "safetensors header");
  return parseSafetensorsHeader(path, headerBytes, fileSize);
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw inputError(path, code === "ENOENT" ? "no such file" : `cannot open (${code})`, error);
  }
}

export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openForReading(path);
  try {
    return await readHeaderFrom(handle, path);
  } finally {
    await handle.close();
  }
}

/** Reads tensors one at a time into caller buffers; `await using r = await SafetensorsReader.open(p)`. */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  readonly #handle: FileHandle;
  /** Reused for F16/BF16/F64 conversion so streaming a bank does not allocate per tensor. */
  #scratch = new Uint8Array(0);
  /** Callers read several tensors concurrently (Promise.all); only one of them may use the scratch. */
  #scratchBusy = false;

  private constructor(handle: FileHandle, header: SafetensorsHeader) {
    this.#handle = handle;
    this.header = header;
  }

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await openForReading(path);
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

  /** The tensor's raw bytes, as stored, into `out` when given (exactly its byte length). */
  async readBytes(name: string, out?: Uint8Array): Promise<Uint8Array> {
    const info = this.info(name);
    const size = info.end - info.begin;
    const buf = out ?? new Uint8Array(size);
    if (buf.byteLength !== size) {
      throw new RangeError(`buffer of ${buf.byteLength} bytes for tensor "${name}" of ${size} bytes`);
    }
    await readFully(this.#handle, buf, info.begin, this.header.path, `tensor "${name}"`);
    return buf;
  }

  /** A float tensor as float32, into `out` when given (exactly numel elements). */
  async readF32(name: string, out?: Float32Array): Promise<Float32Array> {
    const info = this.info(name);
    if (!isFloatDtype(info.dtype)) {
      throw formatError(this.header.path, `tensor "${name}" has dtype ${info.dtype}, not a float type`);
    }
    const n = numel(info.shape);
    const dst = out ?? new Float32Array(n);
    if (dst.length !== n) throw new RangeError(`buffer of ${dst.length} floats for tensor "${name}" of ${n}`);
    if (info.dtype === "F32" && HOST_LITTLE_ENDIAN) {
      await this.readBytes(name, new Uint8Array(dst.buffer, dst.byteOffset, n * 4));
      return dst;
    }
    const size = info.end - info.begin;
    const shared = !this.#scratchBusy;
    let raw: Uint8Array;
    if (shared) {
      this.#scratchBusy = true;
      if (this.#scratch.byteLength < size) this.#scratch = new Uint8Array(size);
      raw = this.#scratch.subarray(0, size);
    } else {
      raw = new Uint8Array(size);
    }
    try {
      await this.readBytes(name, raw);
      decodeFloats(info.dtype, new DataView(raw.buffer, raw.byteOffset, size), dst);
    } finally {
      if (shared) this.#scratchBusy = false;
    }
    return dst;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function decodeFloats(dtype: SafetensorsDtype, view: DataView, dst: Float32Array): void {
  const n = dst.length;
  switch (dtype) {
    case "F64":
      for (let i = 0; i < n; i++) dst[i] = view.getFloat64(i * 8, true);
      return;
    case "F32":
      for (let i = 0; i < n; i++) dst[i] = view.getFloat32(i * 4, true);
      return;
    case "F16":
      for (let i = 0; i < n; i++) dst[i] = f16ToF32(view.getUint16(i * 2, true));
      return;
    case "BF16":
      for (let i = 0; i < n; i++) dst[i] = bf16ToF32(view.getUint16(i * 2, true));
      return;
    default:
      throw new Error(`not a float dtype: ${dtype}`);
  }
}

export interface TensorSpec {
  name: string;
  dtype: WritableDtype;
  shape: number[];
}

export interface TensorToWrite extends TensorSpec {
  data: Float32Array | Float64Array;
}

export interface WriteOptions {
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/** The 8-byte length and the JSON header, padded with spaces so tensor data starts 8-byte aligned, as the reference writer does. */
function encodeHeader(
  specs: readonly TensorSpec[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const s of specs) {
    if (s.name === "__metadata__" || Object.hasOwn(header, s.name)) {
      throw new RangeError(`tensor name "${s.name}" is reserved or given twice`);
    }
    if (!s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(
        `tensor "${s.name}": shape ${JSON.stringify(s.shape)} is not a list of non-negative integers`,
      );
    }
    const bytes = numel(s.shape) * DTYPE_SIZE[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

function encodeTensor(spec: TensorSpec, data: Float32Array | Float64Array): Uint8Array {
  const n = numel(spec.shape);
  if (data.length !== n) {
    throw new RangeError(
      `tensor "${spec.name}": ${data.length} values for shape ${JSON.stringify(spec.shape)}`,
    );
  }
  if (spec.dtype === "F32" && data instanceof Float32Array && HOST_LITTLE_ENDIAN) {
    return new Uint8Array(data.buffer, data.byteOffset, n * 4);
  }
  const out = new Uint8Array(n * DTYPE_SIZE[spec.dtype]);
  const view = new DataView(out.buffer);
  switch (spec.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) view.setFloat32(i * 4, data[i] as number, true);
      break;
    case "F64":
      for (let i = 0; i < n; i++) view.setFloat64(i * 8, data[i] as number, true);
      break;
    case "F16":
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToF16(data[i] as number), true);
      break;
    case "BF16":
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToBf16(data[i] as number), true);
      break;
    default:
      spec.dtype satisfies never;
  }
  return out;
}

/**
 * A safetensors file written tensor by tensor in the declared order, so a large output never holds
 * all its tensors in memory, and the caller may reuse one buffer (each array is written before
 * `append` returns). The bytes go to a temp file beside `path`, renamed over it by `finish`: a
 * reader never sees part of a file, and `abort` leaves nothing behind.
 */
export class SafetensorsWriter {
  private written = 0;

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly handle: FileHandle,
    private readonly specs: readonly TensorSpec[],
  ) {}

  static async create(
    path: string,
    specs: readonly TensorSpec[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsWriter> {
    const header = encodeHeader(specs, metadata);
    await mkdir(dirname(path), { recursive: true });
    const tmp = tempPathFor(path);
    const handle = await open(tmp, "w");
    const writer = new SafetensorsWriter(path, tmp, handle, specs);
    try {
      await handle.write(header);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  /** The next tensor's values; its name, when given, must be the declared one. */
  async append(data: Float32Array | Float64Array, name?: string): Promise<void> {
    const spec = this.specs[this.written];
    if (!spec) throw new RangeError(`${this.path}: all ${this.specs.length} tensors are written already`);
    if (name !== undefined && name !== spec.name)
      throw new RangeError(`${this.path}: got tensor ${name}, expected ${spec.name}`);
    await this.handle.write(encodeTensor(spec, data));
    this.written++;
  }

  async finish(): Promise<void> {
    if (this.written !== this.specs.length)
      throw new RangeError(`${this.path}: ${this.written} of ${this.specs.length} tensors written`);
    await this.handle.sync();
    await this.handle.close();
    await rename(this.tmp, this.path);
    forgetTemp(this.tmp);
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await rm(this.tmp, { force: true });
    forgetTemp(this.tmp);
  }
}

/**
 * Writes a safetensors file whose tensors are produced one at a time (`produce(i)` for specs[i], in
 * order). The array `produce(i)` returns is written before `produce(i + 1)` is called, so the
 * producer may reuse one buffer. Atomic.
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: readonly TensorSpec[],
  produce: (index: number) => Promise<Float32Array | Float64Array> | Float32Array | Float64Array,
  metadata?: Record<string, string>,
  { signal, progress }: WriteOptions = {},
): Promise<void> {
  const writer = await SafetensorsWriter.create(path, specs, metadata);
  try {
    for (let i = 0; i < specs.length; i++) {
      throwIfAborted(signal);
      await writer.append(await produce(i));
      progress?.({ phase: "write", done: i + 1, total: specs.length, unit: "tensors" });
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
  options: WriteOptions = {},
): Promise<void> {
  await writeSafetensorsStreaming(
    path,
    tensors,
    (i) => (tensors[i] as TensorToWrite).data,
    metadata,
    options,
  );
}
