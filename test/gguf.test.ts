import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permuteForRope } from "../src/convert/llamaNames.js";
import { LoramixError } from "../src/errors.js";
import { f16ToF32, f32ToF16 } from "../src/formats/dtypes.js";
import { type GgufMetadata, writeGguf } from "../src/formats/gguf.js";
import { parseGgufHeader, readGgufHeader, readGgufTensorF32 } from "../src/formats/ggufRead.js";
import { tempDir } from "./helpers/shared.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

const METADATA: GgufMetadata = {
  "general.architecture": { type: "string", value: "llama" },
  "t.u8": { type: "u8", value: 255 },
  "t.i8": { type: "i8", value: -128 },
  "t.u16": { type: "u16", value: 65535 },
  "t.i16": { type: "i16", value: -32768 },
  "t.u32": { type: "u32", value: 4294967295 },
  "t.i32": { type: "i32", value: -2147483648 },
  "t.f32": { type: "f32", value: Math.fround(0.1) },
  "t.f64": { type: "f64", value: 0.1 },
  "t.u64": { type: "u64", value: 2n ** 64n - 1n },
  "t.i64": { type: "i64", value: -(2n ** 63n) },
  "t.bool": { type: "bool", value: true },
  "t.false": { type: "bool", value: false },
  "t.string": { type: "string", value: "héllo ▁ wörld\n" },
  "t.empty": { type: "string", value: "" },
  "t.strings": { type: "array", itemType: "string", value: ["<unk>", "▁the", "", "日本"] },
  "t.f32s": { type: "array", itemType: "f32", value: [0, -1000, 1.5, Math.fround(-0.3)] },
  "t.i32s": { type: "array", itemType: "i32", value: [1, 3, 6, -7] },
  "t.u64s": { type: "array", itemType: "u64", value: [0n, 7n] },
  "t.bools": { type: "array", itemType: "bool", value: [true, false] },
  "t.noitems": { type: "array", itemType: "u8", value: [] },
};

function ramp(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround((i - n / 3) * scale));
}

describe("GGUF writer and reader", () => {
  it("reads back every metadata field, tensor info and tensor value written", async () => {
    const path = join(dir, "all.gguf");
    const a = ramp(3 * 5, 0.25);
    const b = Float32Array.from([-3, -2, -1, 0, 1, 2.5, 1000], (v) => v / 64); // exact in F16
    const c = ramp(33);
    await writeGguf(path, {
      metadata: METADATA,
      tensors: [
        { name: "a", type: "F32", dims: [5, 3], data: () => a },
        { name: "b", type: "F16", dims: [7], data: async () => b },
        { name: "c.weight", type: "F32", dims: [1, 3, 11], data: () => c },
      ],
    });
    const file = await readGgufHeader(path);
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expect(file.metadata).toEqual(METADATA);
    expect(file.tensors.map(({ name, type, dims, nbytes }) => ({ name, type, dims, nbytes }))).toEqual([
      { name: "a", type: "F32", dims: [5, 3], nbytes: 60 },
      { name: "b", type: "F16", dims: [7], nbytes: 14 },
      { name: "c.weight", type: "F32", dims: [1, 3, 11], nbytes: 132 },
    ]);
    expect(file.dataOffset % 32).toBe(0);
    for (const t of file.tensors) expect((t.offset - file.dataOffset) % 32).toBe(0);
    expect(await readGgufTensorF32(file, "a")).toEqual(a);
    expect(await readGgufTensorF32(file, "b")).toEqual(b);
    expect(await readGgufTensorF32(file, "c.weight")).toEqual(c);
    // The file ends with the last tensor's data padded to the alignment.
    expect(file.fileSize % 32).toBe(0);
  });

  it("honours general.alignment", async () => {
    const path = join(dir, "align.gguf");
    await writeGguf(path, {
      metadata: { "general.alignment": { type: "u32", value: 64 } },
      tensors: [
        { name: "x", type: "F32", dims: [3], data: () => ramp(3) },
        { name: "y", type: "F32", dims: [3], data: () => ramp(3, 2) },
      ],
    });
    const file = await readGgufHeader(path);
    expect(file.alignment).toBe(64);
    expect(file.tensors.map((t) => t.offset - file.dataOffset)).toEqual([0, 64]);
    expect(await readGgufTensorF32(file, "y")).toEqual(ramp(3, 2));
  });

  it("rounds to F16 like IEEE round-to-nearest-even", () => {
    // Brute force: the nearest half among all 65536, ties to the even bit pattern.
    const halves = Array.from({ length: 0x7c00 }, (_, h) => f16ToF32(h));
    const nearest = (x: number): number => {
      let best = 0;
      for (let h = 1; h < halves.length; h++) {
        const d = Math.abs((halves[h] as number) - x);
        const e = Math.abs((halves[best] as number) - x);
        if (d < e || (d === e && h % 2 === 0)) best = h;
      }
      return best;
    };
    const samples = [
      0,
      1e-8,
      2.98e-8,
      6.1e-5,
      0.1,
      1 / 3,
      1.0009765625,
      1.00048828125,
      1.00146484375,
      2049,
      65519,
      3.25159,
    ];
    for (let i = 0; i < 40; i++) samples.push(Math.fround(Math.sin(i * 7.3) * 10 ** ((i % 9) - 5)));
    for (const x of samples) {
      const fx = Math.fround(Math.abs(x));
      expect(f32ToF16(fx), `${fx}`).toBe(nearest(fx));
      expect(f32ToF16(-fx)).toBe(nearest(fx) | (fx === 0 ? 0 : 0x8000) | (Object.is(-fx, -0) ? 0x8000 : 0));
    }
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up to infinity
    expect(f32ToF16(Number.NaN) & 0x7c00).toBe(0x7c00);
  });

  it("refuses values that do not fit their type", async () => {
    const bad = (metadata: GgufMetadata) => writeGguf(join(dir, "bad.gguf"), { metadata, tensors: [] });
    await expect(bad({ x: { type: "u8", value: 256 } })).rejects.toThrow(/"x": 256 is not a valid u8/);
    await expect(bad({ x: { type: "i32", value: 1.5 } })).rejects.toThrow(/not a valid i32/);
    await expect(bad({ x: { type: "u64", value: -1n } })).rejects.toThrow(/not a valid u64/);
  });
});

/** Hand-built GGUF bytes for hostile-file tests. */
class Bytes {
  parts: number[] = [];
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: bigint): this {
    for (let i = 0n; i < 8n; i++) this.parts.push(Number((v >> (8n * i)) & 0xffn));
    return this;
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.u64(BigInt(b.length));
    this.parts.push(...b);
    return this;
  }
  pad(n: number): this {
    while (this.parts.length < n) this.parts.push(0);
    return this;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const header = (nTensors: bigint, nKv: bigint) => new Bytes().u32(0x46554747).u32(3).u64(nTensors).u64(nKv);

function parse(bytes: Uint8Array): unknown {
  return parseGgufHeader(bytes, { path: "x.gguf", fileSize: bytes.length });
}

function expectFormatError(bytes: Uint8Array, message: RegExp): void {
  let error: unknown;
  try {
    parse(bytes);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(LoramixError);
  expect((error as LoramixError).code).toBe("FORMAT");
  expect((error as Error).message).toMatch(/^x\.gguf: /);
  expect((error as Error).message).toMatch(message);
}

describe("GGUF reader on hostile files", () => {
  it("rejects a bad magic and an unknown version", () => {
    expectFormatError(
      new Bytes().u32(0x46554746).u32(3).u64(0n).u64(0n).build(),
      /not a GGUF file \(magic 0x46554746\)/,
    );
    expectFormatError(
      new Bytes().u32(0x46554747).u32(0x03000000).u64(0n).u64(0n).build(),
      /version 50331648 \(a big-endian file\?\)/,
    );
  });

  it("rejects a truncated file", () => {
    const full = header(0n, 1n).str("general.name").u32(8).str("tiny").build();
    for (const cut of [3, 10, 30, full.length - 1]) {
      expectFormatError(full.subarray(0, cut), cut < 24 ? /truncated/ : /truncated|cannot fit/);
    }
    expect(parse(full)).toMatchObject({ metadata: { "general.name": { type: "string", value: "tiny" } } });
  });

  it("rejects lying counts before allocating", () => {
    expectFormatError(header(0n, 2n ** 40n).build(), /metadata count 1099511627776 exceeds the limit/);
    expectFormatError(header(0n, 1000n).build(), /metadata count 1000 cannot fit in the remaining 0 bytes/);
    expectFormatError(header(5n, 0n).build(), /tensor count 5 cannot fit/);
    expectFormatError(
      header(0n, 1n).str("a").u32(9).u32(4).u64(1000n).build(),
      /"a" array length 1000 cannot fit in the remaining 0 bytes/,
    );
  });

  it("rejects huge string lengths", () => {
    expectFormatError(
      header(0n, 1n)
        .u64(2n ** 62n)
        .pad(64)
        .build(),
      /string length 4611686018427387904 at offset 24 exceeds the limit/,
    );
    expectFormatError(
      header(0n, 1n).u64(100n).pad(64).build(),
      /truncated: needs 100 bytes at offset 32, the file has 64/,
    );
  });

  it("rejects bad value types, nested arrays, bad booleans and invalid UTF-8", () => {
    expectFormatError(header(0n, 1n).str("k").u32(13).build(), /"k" has unknown value type 13/);
    expectFormatError(header(0n, 1n).str("k").u32(9).u32(9).u64(0n).build(), /nested array/);
    const badBool = header(0n, 1n).str("k").u32(7);
    badBool.parts.push(2);
    expectFormatError(badBool.build(), /"k" has bool byte 2/);
    const badUtf8 = header(0n, 1n).u64(2n);
    badUtf8.parts.push(0xc3, 0x28);
    expectFormatError(badUtf8.pad(64).build(), /not valid UTF-8/);
  });

  it("rejects duplicate keys and a bad alignment", () => {
    expectFormatError(
      header(0n, 2n).str("k").u32(4).u32(1).str("k").u32(4).u32(2).build(),
      /duplicate metadata key "k"/,
    );
    expectFormatError(header(0n, 1n).str("general.alignment").u32(4).u32(24).build(), /power of two/);
  });

  /** One F32 tensor of 4 values; `offset` and `size` let the test lie about them. */
  function oneTensor({
    dims = [4n],
    type = 0,
    offset = 0n,
    nDims = dims.length,
    size = 16,
  }: {
    dims?: bigint[];
    type?: number;
    offset?: bigint;
    nDims?: number;
    size?: number;
  } = {}): Uint8Array {
    const b = header(1n, 0n).str("w").u32(nDims);
    for (const d of dims) b.u64(d);
    b.u32(type).u64(offset);
    const dataOffset = Math.ceil(b.parts.length / 32) * 32;
    return b.pad(dataOffset + size).build();
  }

  it("accepts a well-formed tensor and rejects offsets beyond the file", () => {
    expect(parse(oneTensor())).toMatchObject({
      tensors: [{ name: "w", type: "F32", dims: [4], nbytes: 16 }],
    });
    expectFormatError(oneTensor({ offset: 32n }), /tensor "w" ends at \d+, beyond the file's \d+ bytes/);
    expectFormatError(oneTensor({ size: 15 }), /beyond the file/);
    expectFormatError(oneTensor({ offset: 2n ** 60n }), /offset 1152921504606846976 is too large/);
    expectFormatError(oneTensor({ offset: 8n, size: 64 }), /offset 8 is not aligned to 32/);
  });

  it("rejects bad dims and types", () => {
    expectFormatError(oneTensor({ dims: [], nDims: 0 }), /has 0 dimensions/);
    expectFormatError(oneTensor({ dims: [1n, 1n, 1n, 1n, 1n] }), /has 5 dimensions/);
    expectFormatError(oneTensor({ dims: [0n] }), /zero dimension/);
    expectFormatError(oneTensor({ dims: [2n ** 40n, 2n ** 20n] }), /overflow/);
    expectFormatError(oneTensor({ type: 4 }), /unknown ggml type 4/);
    expectFormatError(
      oneTensor({ type: 2, dims: [4n] }),
      /row length 4 is not a multiple of Q4_0's block size 32/,
    );
  });

  it("rejects overlapping tensors and duplicate names", () => {
    const two = (name2: string, offset2: bigint) => {
      const b = header(2n, 0n)
        .str("a")
        .u32(1)
        .u64(8n)
        .u32(0)
        .u64(0n)
        .str(name2)
        .u32(1)
        .u64(8n)
        .u32(0)
        .u64(offset2);
      return b.pad(Math.ceil(b.parts.length / 32) * 32 + 64).build();
    };
    expect(parse(two("b", 32n))).toMatchObject({ tensors: [{ name: "a" }, { name: "b" }] });
    expectFormatError(two("b", 0n), /tensors "a" and "b" overlap/);
    expectFormatError(two("a", 32n), /duplicate tensor "a"/);
  });

  it("reads a header larger than the first read window", async () => {
    const path = join(dir, "big-header.gguf");
    const tokens = Array.from({ length: 120_000 }, (_, i) => `token-${i}-${"x".repeat(i % 7)}`);
    await writeGguf(path, {
      metadata: { "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: tokens } },
      tensors: [],
    });
    const file = await readGgufHeader(path);
    expect(file.fileSize).toBeGreaterThan(2 * 1024 * 1024);
    expect(file.metadata["tokenizer.ggml.tokens"]).toEqual({
      type: "array",
      itemType: "string",
      value: tokens,
    });
    // The same file cut short is reported as truncated, not as a short read.
    const bytes = await readFile(path);
    const cut = join(dir, "cut.gguf");
    await writeFile(cut, bytes.subarray(0, 1_500_000));
    await expect(readGgufHeader(cut)).rejects.toThrow(/truncated|cannot fit/);
  });
});

describe("permuteForRope", () => {
  it("matches numpy's reshape(n_head, 2, d/2, cols).swapaxes(1, 2) done by index", () => {
    const nHead = 3;
    const headDim = 6;
    const cols = 2;
    const rows = nHead * headDim;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => i);
    const out = permuteForRope(w, rows, nHead);
    // Brute force over the 4-d index (h, a, b, c) of the swapped array's shape (n_head, d/2, 2, cols).
    for (let h = 0; h < nHead; h++)
      for (let a = 0; a < headDim / 2; a++)
        for (let b = 0; b < 2; b++)
          for (let c = 0; c < cols; c++) {
            const dst = ((h * (headDim / 2) + a) * 2 + b) * cols + c;
            const src = ((h * 2 + b) * (headDim / 2) + a) * cols + c;
            expect(out[dst]).toBe(w[src]);
          }
  });
});
