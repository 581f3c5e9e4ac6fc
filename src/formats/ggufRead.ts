import { open } from "node:fs/promises";
import { formatError } from "../errors.js";
import { f16ToF32 } from "./dtypes.js";
import {
  alignUp,
  GGML_TYPE_BY_ID,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgufMetadata,
  type GgufScalarType,
  type GgufValue,
} from "./gguf.js";

/**
 * Limits for untrusted files: a crafted count or length must fail with a message, not allocate
 * gigabytes. Real headers stay far below them (a 150k-token vocabulary with merges is ~10 MB).
 */
export const MAX_HEADER_BYTES = 256 * 1024 * 1024;
export const MAX_STRING_BYTES = 64 * 1024 * 1024;
export const MAX_ARRAY_ITEMS = 64 * 1024 * 1024;
export const MAX_TENSORS = 1 << 20;
export const MAX_KV = 1 << 20;
/** ggml tensors have at most 4 dimensions. */
export const MAX_DIMS = 4;
/** First read of a header; grown by doubling when the header is larger. */
const FIRST_WINDOW = 1 << 20;

export interface GgufTensorInfo {
  name: string;
  /** ggml type name, e.g. "F32", "F16", "Q4_K". */
  type: string;
  typeId: number;
  /** GGUF order (`ne`): dims[0] is the row length. */
  dims: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  path: string;
  fileSize: number;
  version: number;
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
}

/** Reads and checks a GGUF file's header: every count, length, type and offset. */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  const handle = await open(path, "r");
  try {
    const fileSize = (await handle.stat()).size;
    let window = Math.min(fileSize, FIRST_WINDOW);
    for (;;) {
      const buf = new Uint8Array(window);
      const { bytesRead } = await handle.read(buf, 0, window, 0);
      try {
        return parseGgufHeader(buf.subarray(0, bytesRead), { path, fileSize });
      } catch (error) {
        if (!(error instanceof NeedMoreBytes)) throw error;
        if (window >= MAX_HEADER_BYTES) {
          throw formatError(path, `header is larger than the ${MAX_HEADER_BYTES}-byte limit`);
        }
        window = Math.min(fileSize, MAX_HEADER_BYTES, window * 2);
      }
    }
  } finally {
    await handle.close();
  }
}

class NeedMoreBytes extends Error {}

/**
 * Parses a header from the first bytes of a file of `fileSize` bytes. Throws NeedMoreBytes
 * (internal) when `bytes` is a prefix too short for the header, a LoramixError for a bad file.
 */
export function parseGgufHeader(
  bytes: Uint8Array,
  { path, fileSize }: { path: string; fileSize: number },
): GgufFile {
  const r = new Cursor(bytes, fileSize, path);
  const magic = r.u32();
  if (magic !== GGUF_MAGIC)
    throw formatError(path, `not a GGUF file (magic 0x${magic.toString(16).padStart(8, "0")})`);
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    const hint = (version & 0xffff) === 0 ? " (a big-endian file?)" : "";
    throw formatError(path, `unsupported GGUF version ${version}${hint}; versions 2 and 3 are read`);
  }
  const nTensors = r.count("tensor count", MAX_TENSORS, 32);
  const nKv = r.count("metadata count", MAX_KV, 13);
  const metadata: GgufMetadata = {};
  for (let i = 0; i < nKv; i++) {
    const key = r.string();
    if (Object.hasOwn(metadata, key)) throw formatError(path, `duplicate metadata key "${key}"`);
    metadata[key] = r.value(key);
  }
  const alignmentValue = metadata["general.alignment"];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignmentValue !== undefined) {
    if (
      alignmentValue.type !== "u32" ||
      alignmentValue.value === 0 ||
      (alignmentValue.value & (alignmentValue.value - 1)) !== 0
    ) {
      throw formatError(path, "general.alignment must be a u32 power of two");
    }
    alignment = alignmentValue.value;
  }
  const raw: { name: string; typeId: number; dims: number[]; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.string();
    if (names.has(name)) throw formatError(path, `duplicate tensor "${name}"`);
    names.add(name);
    const nDims = r.u32();
    if (nDims < 1 || nDims > MAX_DIMS)
      throw formatError(path, `tensor "${name}" has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.safeU64(`tensor "${name}" dimension ${d}`));
    const typeId = r.u32();
    const offset = r.safeU64(`tensor "${name}" offset`);
    raw.push({ name, typeId, dims, offset });
  }
  const dataOffset = alignUp(r.pos, alignment);
  const tensors: GgufTensorInfo[] = raw.map(({ name, typeId, dims, offset }) => {
    const type = GGML_TYPE_BY_ID.get(typeId);
    if (type === undefined) throw formatError(path, `tensor "${name}" has unknown ggml type ${typeId}`);
    let n = 1;
    for (const d of dims) {
      if (d === 0) throw formatError(path, `tensor "${name}" has a zero dimension`);
      n *= d;
      if (!Number.isSafeInteger(n))
        throw formatError(path, `tensor "${name}" dims ${JSON.stringify(dims)} overflow`);
    }
    if ((dims[0] ?? 0) % type.blockSize !== 0) {
      throw formatError(
        path,
        `tensor "${name}" row length ${dims[0]} is not a multiple of ${type.name}'s block size ${type.blockSize}`,
      );
    }
    const nbytes = (n / type.blockSize) * type.typeSize;
    if (offset % alignment !== 0)
      throw formatError(path, `tensor "${name}" offset ${offset} is not aligned to ${alignment}`);
    const begin = dataOffset + offset;
    if (begin + nbytes > fileSize) {
      throw formatError(
        path,
        `tensor "${name}" ends at ${begin + nbytes}, beyond the file's ${fileSize} bytes`,
      );
    }
    return { name, type: type.name, typeId, dims, offset: begin, nbytes };
  });
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1] as GgufTensorInfo;
    const cur = byOffset[i] as GgufTensorInfo;
    if (cur.offset < prev.offset + prev.nbytes)
      throw formatError(path, `tensors "${prev.name}" and "${cur.name}" overlap`);
  }
  return { path, fileSize, version, alignment, dataOffset, metadata, tensors };
}

/** A float tensor (F32, F16 or BF16) of a checked header as float32 values. */
export async function readGgufTensorF32(file: GgufFile, name: string): Promise<Float32Array> {
  const info = file.tensors.find((t) => t.name === name);
  if (info === undefined) throw formatError(file.path, `no tensor "${name}"`);
  if (info.type !== "F32" && info.type !== "F16" && info.type !== "BF16") {
    throw formatError(file.path, `tensor "${name}" is ${info.type}; only F32, F16 and BF16 are read`);
  }
  const bytes = new Uint8Array(info.nbytes);
  const handle = await open(file.path, "r");
  try {
    const { bytesRead } = await handle.read(bytes, 0, info.nbytes, info.offset);
    if (bytesRead !== info.nbytes)
      throw formatError(file.path, `tensor "${name}" is truncated (file changed?)`);
  } finally {
    await handle.close();
  }
  if (info.type === "F32") return new Float32Array(bytes.buffer);
  const halves = new Uint16Array(bytes.buffer);
  const out = new Float32Array(halves.length);
  if (info.type === "F16") {
    for (let i = 0; i < halves.length; i++) out[i] = f16ToF32(halves[i] as number);
  } else {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) u32[i] = (halves[i] as number) << 16;
  }
  return out;
}

const TYPE_NAMES: (GgufScalarType | "array")[] = [
  "u8",
  "i8",
  "u16",
  "i16",
  "u32",
  "i32",
  "f32",
  "bool",
  "string",
  "array",
  "u64",
  "i64",
  "f64",
];
const MIN_SIZE: Record<GgufScalarType, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  string: 8,
  u64: 8,
  i64: 8,
  f64: 8,
};

/** Bounds-checked little-endian reads over a prefix of a file. */
class Cursor {
  pos = 0;
  private readonly view: DataView;
  private static readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly bytes: Uint8Array,
    private readonly fileSize: number,
    private readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private take(n: number): number {
    if (this.pos + n > this.fileSize) {
      throw formatError(
        this.path,
        `truncated: needs ${n} bytes at offset ${this.pos}, the file has ${this.fileSize}`,
      );
    }
    if (this.pos + n > this.bytes.length) throw new NeedMoreBytes();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }
  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }
  u64(): bigint {
    return this.view.getBigUint64(this.take(8), true);
  }

  safeU64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(this.path, `${what} ${v} is too large`);
    return Number(v);
  }

  /** A count of items of at least `minItemBytes` each, which must fit in the rest of the file. */
  count(what: string, limit: number, minItemBytes: number): number {
    const v = this.u64();
    const rest = this.fileSize - this.pos;
    if (v > BigInt(limit)) throw formatError(this.path, `${what} ${v} exceeds the limit of ${limit}`);
    if (Number(v) * minItemBytes > rest) {
      throw formatError(this.path, `${what} ${v} cannot fit in the remaining ${rest} bytes`);
    }
    return Number(v);
  }

  string(): string {
    const length = this.u64();
    if (length > BigInt(MAX_STRING_BYTES)) {
      throw formatError(
        this.path,
        `string length ${length} at offset ${this.pos - 8} exceeds the limit of ${MAX_STRING_BYTES}`,
      );
    }
    const at = this.take(Number(length));
    try {
      return Cursor.decoder.decode(this.bytes.subarray(at, at + Number(length)));
    } catch (error) {
      throw formatError(this.path, `string at offset ${at} is not valid UTF-8`, error);
    }
  }

  private typeName(id: number, key: string): GgufScalarType | "array" {
    const name = TYPE_NAMES[id];
    if (name === undefined) throw formatError(this.path, `metadata "${key}" has unknown value type ${id}`);
    return name;
  }

  value(key: string): GgufValue {
    const type = this.typeName(this.u32(), key);
    if (type !== "array") return this.scalarValue(type, key);
    const itemType = this.typeName(this.u32(), key);
    if (itemType === "array")
      throw formatError(this.path, `metadata "${key}" is a nested array (not supported)`);
    const n = this.count(`metadata "${key}" array length`, MAX_ARRAY_ITEMS, MIN_SIZE[itemType]);
    const items: (number | bigint | boolean | string)[] = new Array(n);
    for (let i = 0; i < n; i++)
      items[i] = this.scalarValue(itemType, key).value as number | bigint | boolean | string;
    return { type: "array", itemType, value: items } as GgufValue;
  }

  private scalarValue(type: GgufScalarType, key: string): GgufValue {
    switch (type) {
      case "u8":
        return { type, value: this.u8() };
      case "i8":
        return { type, value: this.view.getInt8(this.take(1)) };
      case "u16":
        return { type, value: this.view.getUint16(this.take(2), true) };
      case "i16":
        return { type, value: this.view.getInt16(this.take(2), true) };
      case "u32":
        return { type, value: this.u32() };
      case "i32":
        return { type, value: this.view.getInt32(this.take(4), true) };
      case "f32":
        return { type, value: this.view.getFloat32(this.take(4), true) };
      case "f64":
        return { type, value: this.view.getFloat64(this.take(8), true) };
      case "u64":
        return { type, value: this.u64() };
      case "i64":
        return { type, value: this.view.getBigInt64(this.take(8), true) };
      case "bool": {
        const b = this.u8();
        if (b > 1) throw formatError(this.path, `metadata "${key}" has bool byte ${b}`);
        return { type, value: b === 1 };
      }
      case "string":
        return { type, value: this.string() };
      default:
        return type satisfies never;
    }
  }
}

/**
 * Checks a GGUF from a stranger with loramix's own reader before llama.cpp opens it: llama.cpp
 * trusts counts and offsets (a huge array count hangs it, a bad offset aborts the process), while
 * this reader refuses them with one line. `kind` is what the caller expects the file to be.
 */
export async function checkGgufForLlama(path: string, kind: "model" | "adapter"): Promise<GgufFile> {
  const file = await readGgufHeader(path);
  const arch = file.metadata["general.architecture"];
  if (arch?.type !== "string" || arch.value === "")
    throw formatError(path, "no general.architecture: not a llama.cpp GGUF");
  const type = file.metadata["general.type"];
  const isAdapter = type?.type === "string" && type.value === "adapter";
  if (kind === "model" && isAdapter)
    throw formatError(path, "is a LoRA adapter GGUF, not a model (give it as the adapter)");
  if (kind === "adapter" && !isAdapter)
    throw formatError(path, 'is not a LoRA adapter GGUF (general.type is not "adapter")');
  if (file.tensors.length === 0) throw formatError(path, "holds no tensors");
  return file;
}
