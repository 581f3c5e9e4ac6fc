import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../src/formats/dtypes.js";
import {
  MAX_HEADER_LENGTH,
  readSafetensorsHeader,
  SafetensorsReader,
  type TensorToWrite,
  writeSafetensors,
  writeSafetensorsStreaming,
} from "../src/formats/safetensors.js";
import { PEFT_FIXTURES, tempDir } from "./helpers/shared.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("loramix-st-"));
});
afterAll(() => cleanup());

/** f32 bit pattern -> number, independent of the code under test. */
function fromBits(bits: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, bits >>> 0);
  return v.getFloat32(0);
}

describe("dtypes", () => {
  it("decodes hand-worked f16 bit patterns", () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x3e00)).toBe(1.5);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0400)).toBe(2 ** -14);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(f16ToF32(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });

  it("encodes f16 with round-to-nearest-even, subnormals, overflow and NaN", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-1.5)).toBe(0xbe00);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie, even neighbour below
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, even neighbour above
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // tie at the top rounds to infinity
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal
    expect(f32ToF16(2 ** -25 * 1.01)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 ulp: tie to even
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // largest subnormal carries into the exponent
    expect(f32ToF16(1e-9)).toBe(0x0000);
    expect(f32ToF16(-1e-9)).toBe(0x8000);
    expect(f32ToF16(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it("decodes and encodes bf16 with round-to-nearest-even", () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(bf16ToF32(0x4049)).toBe(3.140625);
    expect(f32ToBf16(fromBits(0x40490fdb))).toBe(0x4049); // pi, rounds down
    expect(f32ToBf16(fromBits(0x3f808000))).toBe(0x3f80); // tie, even below
    expect(f32ToBf16(fromBits(0x3f818000))).toBe(0x3f82); // tie, even above
    expect(f32ToBf16(fromBits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16(fromBits(0x7f7fffff))).toBe(0x7f80); // max f32 rounds to infinity
    expect(f32ToBf16(Number.NEGATIVE_INFINITY)).toBe(0xff80);
    expect(f32ToBf16(fromBits(0x7f800001))).toBe(0x7fc0); // a NaN stays a NaN, not infinity
    expect(f32ToBf16(-0)).toBe(0x8000);
  });

  it("round-trips every finite f16 and a sweep of bf16 patterns", () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16(f16ToF32(h))).toBe(h);
    }
    for (let b = 0; b < 0x10000; b += 7) {
      if ((b & 0x7f80) === 0x7f80) continue;
      expect(f32ToBf16(bf16ToF32(b))).toBe(b);
    }
  });
});

/** Independent reader of a whole safetensors file for checking: prefix, JSON, raw little-endian floats. */
async function decodeIndependently(path: string) {
  const bytes = await readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const f32 = (name: string): number[] => {
    const t = header[name]!;
    const out: number[] = [];
    for (let at = 8 + n + t.data_offsets[0]; at < 8 + n + t.data_offsets[1]; at += 4)
      out.push(view.getFloat32(at, true));
    return out;
  };
  return { headerLength: n, header, bytes, f32 };
}

describe("reading real adapters", () => {
  const file = join(PEFT_FIXTURES, "gemma3-270m_ao-wei_adapter/adapter_model.safetensors");

  it("reads the header of a PEFT adapter", async () => {
    const h = await readSafetensorsHeader(file);
    expect(h.fileSize).toBe(1493200);
    expect(h.dataOffset).toBe(8 + 18632);
    expect(h.tensors.size).toBe(144);
    expect(h.metadata).toEqual({ format: "pt" });
    const q = h.tensors.get("base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight");
    expect(q).toEqual({
      name: "base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight",
      dtype: "F32",
      shape: [640, 4],
      begin: 8 + 18632 + 30720,
      end: 8 + 18632 + 40960,
    });
  });

  it("reads every tensor equal to an independent decode of the raw bytes", async () => {
    const ref = await decodeIndependently(file);
    await using reader = await SafetensorsReader.open(file);
    let checked = 0;
    for (const [name, info] of reader.header.tensors) {
      const expected = ref.f32(name);
      const got = await reader.readF32(name);
      expect(got.length).toBe(expected.length);
      expect(Array.from(got)).toEqual(expected);
      // and into a caller buffer at an offset of a larger allocation
      const big = new Float32Array(expected.length + 3);
      const out = big.subarray(3);
      expect(await reader.readF32(name, out)).toBe(out);
      expect(Array.from(out)).toEqual(expected);
      const raw = await reader.readBytes(name);
      expect(Buffer.from(raw).equals(ref.bytes.subarray(info.begin, info.end))).toBe(true);
      checked++;
    }
    expect(checked).toBe(144);
    // one value spelled out, so a consistent misreading of both decoders would still show
    const name = "base_model.model.model.layers.9.self_attn.v_proj.lora_B.weight";
    const info = reader.header.tensors.get(name)!;
    const last = ref.bytes.readFloatLE(info.end - 4);
    expect((await reader.readF32(name)).at(-1)).toBe(last);
    expect(last).not.toBe(0);
  });

  it("refuses buffers of the wrong size and unknown tensors", async () => {
    await using reader = await SafetensorsReader.open(file);
    const name = "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight";
    await expect(reader.readF32(name, new Float32Array(10))).rejects.toThrow(/buffer of 10 floats/);
    await expect(reader.readBytes(name, new Uint8Array(4))).rejects.toThrow(/buffer of 4 bytes/);
    await expect(reader.readF32("nope")).rejects.toThrow(/no tensor "nope"/);
  });
});

describe("writing", () => {
  const values = [0, -0, 1, -2, 0.5, 1.5, 65504, 2 ** -24, -0.333251953125, 3.140625, 1024, -7.25];

  for (const dtype of ["F32", "F16", "BF16", "F64"] as const) {
    it(`round-trips ${dtype}`, async () => {
      const path = join(dir, `rt-${dtype}.safetensors`);
      // values exactly representable in the target type, so the round trip must be exact
      const usable = values.filter(
        (v) => dtype !== "BF16" || ![65504, 2 ** -24, -0.333251953125].includes(v),
      );
      const x = new Float32Array(usable.length * 2);
      x.set(usable);
      x.set(
        usable.map((v) => -v),
        usable.length,
      );
      const big = dtype === "F64" ? Float64Array.from([Math.PI, 1e300, -1e-300, 0.1]) : null;
      const tensors: TensorToWrite[] = [
        { name: "x", dtype, shape: [2, usable.length], data: x },
        { name: "empty", dtype, shape: [0, 5], data: new Float32Array(0) },
      ];
      if (big) tensors.push({ name: "big", dtype, shape: [4], data: big });
      await writeSafetensors(path, tensors, { format: "pt", note: "ü" });
      await using r = await SafetensorsReader.open(path);
      expect(r.header.metadata).toEqual({ format: "pt", note: "ü" });
      expect([...r.header.tensors.keys()]).toEqual(tensors.map((t) => t.name));
      expect(r.header.tensors.get("x")!.dtype).toBe(dtype);
      expect(await r.readF32("x")).toEqual(x);
      expect(await r.readF32("empty")).toEqual(new Float32Array(0));
      if (big) {
        const raw = await r.readBytes("big");
        expect(Array.from(new Float64Array(raw.buffer, raw.byteOffset, 4))).toEqual(Array.from(big));
      }
      // the layout the reference writer produces: space padding to 8 bytes, offsets from the data start
      const ref = await decodeIndependently(path);
      expect(ref.headerLength % 8).toBe(0);
      const headerBytes = ref.bytes.subarray(8, 8 + ref.headerLength);
      const jsonEnd = headerBytes.lastIndexOf(0x7d) + 1;
      expect(ref.headerLength - jsonEnd).toBeLessThan(8);
      expect(headerBytes.subarray(jsonEnd).every((b) => b === 0x20)).toBe(true);
      expect(ref.header.x!.data_offsets[0]).toBe(0);
    });
  }

  it("writes hand-checkable bytes for F16 and BF16", async () => {
    const path = join(dir, "bytes.safetensors");
    const one = Float32Array.from([1, -2]);
    await writeSafetensors(path, [
      { name: "h", dtype: "F16", shape: [2], data: one },
      { name: "b", dtype: "BF16", shape: [2], data: one },
    ]);
    const ref = await decodeIndependently(path);
    const data = ref.bytes.subarray(8 + ref.headerLength);
    expect([...data]).toEqual([0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0xc0]);
    expect(ref.header.__metadata__).toBeUndefined();
  });

  it("streams tensors produced one at a time from one reused buffer", async () => {
    const path = join(dir, "stream.safetensors");
    const specs = Array.from({ length: 5 }, (_, i) => ({
      name: `t${i}`,
      dtype: "F32" as const,
      shape: [3, 4],
    }));
    const buffer = new Float32Array(12);
    const events: number[] = [];
    await writeSafetensorsStreaming(
      path,
      specs,
      async (i) => {
        for (let k = 0; k < 12; k++) buffer[k] = i * 100 + k;
        return buffer;
      },
      { format: "pt" },
      { progress: (e) => events.push(e.done) },
    );
    expect(events).toEqual([1, 2, 3, 4, 5]);
    await using r = await SafetensorsReader.open(path);
    for (let i = 0; i < 5; i++) {
      expect(Array.from(await r.readF32(`t${i}`))).toEqual(Array.from({ length: 12 }, (_, k) => i * 100 + k));
    }
  });

  it("leaves neither the file nor a temp file when producing fails or is aborted", async () => {
    const sub = join(dir, "failing");
    const path = join(sub, "out.safetensors");
    const specs = [
      { name: "a", dtype: "F32" as const, shape: [2] },
      { name: "b", dtype: "F32" as const, shape: [2] },
    ];
    await expect(
      writeSafetensorsStreaming(path, specs, (i) => {
        if (i === 1) throw new Error("producer failed");
        return new Float32Array(2);
      }),
    ).rejects.toThrow("producer failed");
    expect(await readdir(sub)).toEqual([]);
    const controller = new AbortController();
    controller.abort();
    await expect(
      writeSafetensorsStreaming(path, specs, () => new Float32Array(2), undefined, {
        signal: controller.signal,
      }),
    ).rejects.toThrow("interrupted");
    await expect(
      writeSafetensors(path, [{ name: "a", dtype: "F32", shape: [3], data: new Float32Array(2) }]),
    ).rejects.toThrow(/2 values for shape \[3\]/);
    expect(await readdir(sub)).toEqual([]);
  });

  it("refuses duplicate or reserved tensor names", async () => {
    const t = { name: "a", dtype: "F32" as const, shape: [1], data: new Float32Array(1) };
    await expect(writeSafetensors(join(dir, "dup.safetensors"), [t, t])).rejects.toThrow(/given twice/);
    await expect(
      writeSafetensors(join(dir, "meta.safetensors"), [{ ...t, name: "__metadata__" }]),
    ).rejects.toThrow(/reserved/);
  });

  it("reads BF16 tensors concurrently from one reader without mixing them up", async () => {
    const path = join(dir, "concurrent.safetensors");
    const tensors: TensorToWrite[] = Array.from({ length: 8 }, (_, i) => ({
      name: `t${i}`,
      dtype: "BF16",
      shape: [1000],
      data: new Float32Array(1000).fill(i + 1),
    }));
    await writeSafetensors(path, tensors);
    await using r = await SafetensorsReader.open(path);
    const all = await Promise.all(tensors.map((t) => r.readF32(t.name)));
    all.forEach((a, i) => {
      expect(a.every((v) => v === i + 1)).toBe(true);
    });
  });
});

describe("hostile files", () => {
  /** A file from a header (JSON text or value), `dataBytes` zero bytes of data, and optionally a lying length prefix. */
  async function hostile(
    name: string,
    header: unknown,
    { dataBytes = 0, length }: { dataBytes?: number; length?: bigint } = {},
  ): Promise<string> {
    const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(length ?? BigInt(json.length));
    const path = join(dir, `${name}.safetensors`);
    await writeFile(path, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
    return path;
  }

  async function refusal(path: string): Promise<string> {
    const error = await readSafetensorsHeader(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as LoramixError).code).toBe("FORMAT");
    expect((error as LoramixError).message.startsWith(`${path}: `)).toBe(true);
    return (error as LoramixError).message.slice(path.length + 2);
  }

  const f32 = (shape: number[], offsets: unknown) => ({ dtype: "F32", shape, data_offsets: offsets });

  it("refuses a file shorter than the prefix", async () => {
    const path = join(dir, "short.safetensors");
    await writeFile(path, Buffer.from([1, 2, 3, 4, 5]));
    expect(await refusal(path)).toBe("file is 5 bytes, shorter than the 8-byte safetensors prefix");
  });

  it("refuses a header length beyond the file", async () => {
    const path = await hostile("beyond", "{}     ", { length: 100n });
    expect(await refusal(path)).toBe("safetensors header length 100 exceeds the 7 bytes after the prefix");
  });

  it("refuses a huge header length before allocating it", async () => {
    const path = await hostile("huge", "{}", { length: 2n ** 64n - 1n });
    expect(await refusal(path)).toBe(
      `safetensors header length 18446744073709551615 exceeds the limit of ${MAX_HEADER_LENGTH} bytes`,
    );
  });

  it("refuses a header that is not UTF-8 JSON", async () => {
    expect(await refusal(await hostile("nonjson", "{not json"))).toMatch(
      /^safetensors header is not valid UTF-8 JSON \(/,
    );
    const badUtf8 = join(dir, "badutf8.safetensors");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(4n);
    await writeFile(badUtf8, Buffer.concat([prefix, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
    expect(await refusal(badUtf8)).toMatch(/^safetensors header is not valid UTF-8 JSON/);
  });

  it("refuses a header that is not an object", async () => {
    expect(await refusal(await hostile("array", [1, 2]))).toBe(
      "safetensors header is a list, not a JSON object",
    );
    expect(await refusal(await hostile("number", 42))).toBe(
      "safetensors header is a number, not a JSON object",
    );
    // null is typeof "object" in JavaScript; the message must not say "an object, not an object".
    expect(await refusal(await hostile("null", null))).toBe("safetensors header is null, not a JSON object");
  });

  it("refuses unknown dtypes, including names of Object.prototype members", async () => {
    const h = (dtype: string) => ({ w: { dtype, shape: [1], data_offsets: [0, 4] } });
    expect(await refusal(await hostile("f8", h("F8"), { dataBytes: 4 }))).toBe(
      'tensor "w": unknown dtype "F8"',
    );
    expect(await refusal(await hostile("proto", h("toString"), { dataBytes: 4 }))).toBe(
      'tensor "w": unknown dtype "toString"',
    );
  });

  it("refuses bad shapes and offsets, including numbers above 2^53", async () => {
    expect(await refusal(await hostile("neg", { w: f32([-1], [0, 4]) }, { dataBytes: 4 }))).toBe(
      'tensor "w": shape [-1] is not a list of non-negative integers',
    );
    expect(await refusal(await hostile("frac", { w: f32([1.5], [0, 6]) }, { dataBytes: 8 }))).toMatch(
      /shape \[1.5\] is not a list/,
    );
    const hugeShape = '{"w":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,4]}}';
    expect(await refusal(await hostile("bigshape", hugeShape, { dataBytes: 4 }))).toMatch(
      /shape \[9007199254740992\] is not/,
    );
    expect(await refusal(await hostile("rev", { w: f32([1], [4, 0]) }, { dataBytes: 8 }))).toBe(
      'tensor "w": data_offsets [4,0] are not two ordered integers',
    );
    expect(await refusal(await hostile("three", { w: f32([1], [0, 4, 8]) }, { dataBytes: 8 }))).toMatch(
      /data_offsets \[0,4,8\] are not two ordered integers/,
    );
    const hugeEnd = '{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,18446744073709551616]}}';
    expect(await refusal(await hostile("bigoff", hugeEnd, { dataBytes: 4 }))).toMatch(
      /are not two ordered integers/,
    );
  });

  it("refuses a shape that does not match the byte span", async () => {
    expect(await refusal(await hostile("lying", { w: f32([2, 2], [0, 12]) }, { dataBytes: 16 }))).toBe(
      'tensor "w": shape [2,2] × F32 is 16 bytes but data_offsets span 12',
    );
  });

  it("refuses overlapping spans", async () => {
    const header = { b: f32([2], [4, 12]), a: f32([2], [0, 8]) };
    expect(await refusal(await hostile("overlap", header, { dataBytes: 12 }))).toBe(
      'tensor "b" (data bytes 4-12) overlaps tensor "a" (data bytes 0-8)',
    );
  });

  it("refuses a span past the end of the file", async () => {
    expect(await refusal(await hostile("past", { w: f32([4], [0, 16]) }, { dataBytes: 8 }))).toBe(
      'tensor "w": data_offsets end at 16, beyond the data area of 8 bytes (file 71 bytes)',
    );
  });

  it("refuses a __metadata__ that is not a string map", async () => {
    expect(await refusal(await hostile("meta1", { __metadata__: { format: 1 } }))).toBe(
      '__metadata__ "format" is a number, not a string',
    );
    expect(await refusal(await hostile("meta2", { __metadata__: ["pt"] }))).toBe(
      "__metadata__ is not a string-to-string map",
    );
  });

  it("refuses data bytes no tensor covers: a gap, a tail, and a header length one byte short", async () => {
    const gap = { a: f32([1], [0, 4]), b: f32([1], [8, 12]) };
    expect(await refusal(await hostile("gap", gap, { dataBytes: 12 }))).toBe(
      'data bytes 4-8 belong to no tensor (before "b"); the header\'s length or offsets are wrong',
    );
    expect(await refusal(await hostile("tail", { w: f32([1], [0, 4]) }, { dataBytes: 5 }))).toBe(
      "the last 1 data bytes belong to no tensor; the header's length or offsets are wrong",
    );
    // The header padded with a space, its length one byte short: the space would become data byte 0.
    const text = `${JSON.stringify({ w: f32([1], [0, 4]) })} `;
    const short = await hostile("short", text, { dataBytes: 4, length: BigInt(Buffer.byteLength(text) - 1) });
    expect(await refusal(short)).toBe(
      "the last 1 data bytes belong to no tensor; the header's length or offsets are wrong",
    );
  });

  it("accepts a minimal valid hand-built file", async () => {
    const path = await hostile(
      "ok",
      { __metadata__: { a: "b" }, w: { dtype: "I8", shape: [3], data_offsets: [0, 3] } },
      { dataBytes: 3 },
    );
    await using r = await SafetensorsReader.open(path);
    expect(r.header.metadata).toEqual({ a: "b" });
    expect(Array.from(await r.readBytes("w"))).toEqual([0, 0, 0]);
    await expect(r.readF32("w")).rejects.toThrow(/dtype I8, not a float type/);
  });
});
