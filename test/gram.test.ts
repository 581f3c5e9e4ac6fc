import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../src/util/prng.js";
import {
  bankGram,
  type GramBank,
  gramFromBuffer,
  gramKey,
  gramOfAdapters,
  gramToBuffer,
  LATEST_GRAM_KEY,
} from "../src/weights/gram.js";
import { balanceTileRows, GramAccumulator } from "../src/weights/gramKernel.js";
import { PEFT_FIXTURES, tempDir } from "./helpers/shared.js";

/** Reads every F32 tensor of a safetensors file, sorted by name: the brute-force twin's own parser. */
function readAllF32(file: string): { name: string; shape: number[]; data: Float32Array }[] {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.toString("utf8", 8, 8 + headerLength)) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  return Object.entries(header)
    .filter(([name]) => name !== "__metadata__")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, t]) => {
      expect(t.dtype).toBe("F32");
      const start = 8 + headerLength + t.data_offsets[0];
      const copy = bytes.subarray(start, 8 + headerLength + t.data_offsets[1]);
      return {
        name,
        shape: t.shape,
        data: new Float32Array(copy.buffer.slice(copy.byteOffset, copy.byteOffset + copy.length)),
      };
    });
}

/** Writes a minimal F32 safetensors file (8-byte LE header length, JSON header, data). */
async function writeF32(
  file: string,
  tensors: { name: string; shape: number[]; data: Float32Array }[],
): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.length * 4] };
    offset += t.data.length * 4;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  await writeFile(file, Buffer.concat([length, json, ...tensors.map((t) => Buffer.from(t.data.buffer))]));
}

/** ΘΘᵀ the obvious way: flatten every adapter, dot every pair. */
function bruteGram(thetas: Float32Array[]): Float64Array {
  const n = thetas.length;
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      const a = thetas[i] as Float32Array;
      const b = thetas[j] as Float32Array;
      for (let k = 0; k < a.length; k++) s += (a[k] as number) * (b[k] as number);
      g[i * n + j] = s;
    }
  return g;
}

const flatten = (ts: { data: Float32Array }[]) => {
  const out = new Float32Array(ts.reduce((s, t) => s + t.data.length, 0));
  let at = 0;
  for (const t of ts) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
};

const expectClose = (actual: Float64Array, expected: Float64Array, rel = 1e-12) => {
  expect(actual.length).toBe(expected.length);
  for (let k = 0; k < expected.length; k++) {
    expect(Math.abs((actual[k] as number) - (expected[k] as number))).toBeLessThanOrEqual(
      rel * Math.max(1, Math.abs(expected[k] as number)),
    );
  }
};

describe("Gram kernel", () => {
  it("accumulates the upper triangle of x·xᵀ, also for a subset of tile rows", () => {
    const random = seededRandom(3);
    const rows = 12;
    const stride = 700;
    const width = 613; // odd, and not a multiple of the 256-column panel
    const x = Float32Array.from({ length: rows * stride }, () => random() - 0.5);
    const all = new GramAccumulator(rows, [0, 4, 8]);
    const part = new GramAccumulator(rows, [4]);
    // Two calls: sums carry over between blocks.
    all.add(x, stride, 300);
    all.add(x.subarray(300), stride, width - 300);
    part.add(x, stride, width);
    const g = all.result();
    const p = part.result();
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < rows; j++) {
        let s = 0;
        for (let k = 0; k < width; k++) s += (x[i * stride + k] as number) * (x[j * stride + k] as number);
        const upper = Math.floor(j / 4) >= Math.floor(i / 4);
        expect(g[i * rows + j]).toBeCloseTo(upper ? s : 0, 12);
        expect(p[i * rows + j]).toBeCloseTo(upper && i >= 4 && i < 8 ? s : 0, 12);
      }
  });

  it("matches a float64 brute force to 1e-12 relative on near-orthogonal adapter-scale rows", () => {
    // LoRA-like magnitudes (lora_A ~ 1/64, lora_B ~ 1e-3) over 2^20 parameters: off-diagonal entries
    // are ~1e-3 of the diagonal ones, which float32 partial sums would get wrong at the 1e-5 level.
    const random = seededRandom(11);
    const rows = 8;
    const p = 1 << 20;
    const x = new Float32Array(rows * p);
    for (let k = 0; k < x.length; k++) x[k] = (random() - 0.5) * ((k % p) * 2 < p ? 0.03 : 0.002);
    const gram = new GramAccumulator(rows, [0, 4]);
    for (let c0 = 0; c0 < p; c0 += 100_003) gram.add(x.subarray(c0), p, Math.min(100_003, p - c0));
    const g = gram.result();
    for (let i = 0; i < rows; i++)
      for (let j = i; j < rows; j++) {
        let s = 0;
        for (let k = 0; k < p; k++) s += (x[i * p + k] as number) * (x[j * p + k] as number);
        expect(Math.abs((g[i * rows + j] as number) - s)).toBeLessThanOrEqual(1e-12 * Math.abs(s));
      }
  });

  it("gives every tile row to exactly one worker, with balanced work", () => {
    const parts = balanceTileRows(400, 400, 2);
    expect(parts.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, t) => 4 * t));
    const work = parts.map((p) => p.reduce((s, i0) => s + (400 - i0), 0));
    expect(Math.abs((work[0] as number) - (work[1] as number)) / (work[0] as number)).toBeLessThan(0.02);
  });
});

describe("gramOfAdapters", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const layout = [
    { name: "m.layers.0.q.lora_A.weight", shape: [3, 50] },
    { name: "m.layers.0.q.lora_B.weight", shape: [40, 3] },
    { name: "m.layers.1.q.lora_A.weight", shape: [3, 50] },
    { name: "m.layers.1.q.lora_B.weight", shape: [40, 3] },
  ];
  const files: string[] = [];
  const thetas: Float32Array[] = [];

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    const random = seededRandom(17);
    for (let a = 0; a < 7; a++) {
      const tensors = layout.map((t) => ({
        ...t,
        data: Float32Array.from({ length: t.shape[0]! * t.shape[1]! }, () => random() * 2 - 1),
      }));
      const file = join(dir, `a${a}`, "adapter_model.safetensors");
      await mkdir(join(dir, `a${a}`));
      await writeF32(file, tensors);
      files.push(file);
      thetas.push(flatten(tensors));
    }
  });
  afterAll(() => cleanup());

  const sources = () => files.map((file, i) => ({ file, hash: `h${i}` }));

  it("equals brute-force ΘΘᵀ, streamed in blocks smaller than one adapter", async () => {
    const expected = bruteGram(thetas);
    // 7 rows padded to 8; a 2 KB budget forces one tensor per block.
    const g = await gramOfAdapters(sources(), layout, { threads: 1, blockBytes: 2048 });
    expect(g.hashes).toEqual(files.map((_, i) => `h${i}`));
    expect(g.params).toBe(2 * (150 + 120));
    expectClose(g.values, expected);
  });

  it("gives the same matrix on worker threads", async () => {
    const g = await gramOfAdapters(sources(), layout, { threads: 2, blockBytes: 4096 });
    expectClose(g.values, bruteGram(thetas));
  }, 30_000);

  it("computes only new rows when given the Gram matrix of a subset", async () => {
    const first = await gramOfAdapters(sources().slice(0, 4), layout, { threads: 1 });
    // Poison the reused block: if it were recomputed, the result would not show -1.
    const previous = { ...first, values: first.values.map(() => -1) };
    const all = sources();
    const g = await gramOfAdapters([all[5]!, all[0]!, all[4]!, all[1]!, all[2]!, all[6]!, all[3]!], layout, {
      threads: 1,
      previous,
    });
    const order = [5, 0, 4, 1, 2, 6, 3];
    const brute = bruteGram(thetas);
    for (const [a, i] of order.entries()) {
      for (const [b, j] of order.entries()) {
        const v = g.values[a * 7 + b] as number;
        if (i < 4 && j < 4) expect(v).toBe(-1);
        else expect(v).toBeCloseTo(brute[i * 7 + j] as number, 10);
      }
    }
  });

  it("merges entries that share an adapter hash and round-trips through the cache format", async () => {
    const s = sources();
    const g = await gramOfAdapters([s[0]!, { ...s[0]!, file: files[0]! }, s[1]!], layout, { threads: 1 });
    expect(g.hashes).toEqual(["h0", "h1"]);
    expect(gramFromBuffer(gramToBuffer(g), "mem")).toEqual(g);
    const bytes = gramToBuffer(g);
    expect(() => gramFromBuffer(bytes.subarray(0, bytes.length - 8), "bank.sqlite")).toThrow(
      "bank.sqlite: Gram matrix of 2 adapters needs 32 bytes, found 24",
    );
  });

  it("names the adapter whose tensor does not fit the layout", async () => {
    const bad = join(dir, "bad.safetensors");
    await writeF32(bad, [{ name: layout[0]!.name, shape: [2, 50], data: new Float32Array(100) }]);
    await expect(
      gramOfAdapters([{ file: bad, hash: "x" }], layout.slice(0, 1), { threads: 1 }),
    ).rejects.toThrow(`${bad}: tensor "${layout[0]!.name}" has shape [2,50], the bank's layout has [3,50]`);
  });

  it("caches the bank's Gram matrix and extends it when entries are added", async () => {
    // The bank seen through the interface bankGram uses; its cache is a Map.
    const cache = new Map<string, Uint8Array>();
    const entries = files.slice(0, 3).map((file, i) => ({
      id: `e${i}`,
      adapterPath: join(file, ".."),
      adapterHash: `h${i}`,
    }));
    const bank: GramBank = {
      dir,
      entries: () => [...entries, { id: "data-only", adapterPath: null, adapterHash: null }],
      layout: () => ({ tensors: layout }),
      getCache: (kind, key) => cache.get(`${kind}/${key}`),
      putCache: (kind, key, blob) => cache.set(`${kind}/${key}`, blob),
    };
    const first = await bankGram(bank, { threads: 1 });
    expect(first.ids).toEqual(["e0", "e1", "e2"]);
    expect(first.key).toBe(gramKey(["h2", "h0", "h1"]));
    expect(cache.has(`gram/${first.key}`)).toBe(true);
    const brute = bruteGram(thetas);
    for (let a = 0; a < 3; a++)
      for (let b = 0; b < 3; b++)
        expect(first.entryValues[a * 3 + b]).toBeCloseTo(brute[a * 7 + b] as number, 10);

    // A second entry with the same adapter shares its row; a new adapter extends the latest matrix.
    entries.push({ id: "e0-copy", adapterPath: join(files[0] as string, ".."), adapterHash: "h0" });
    entries.push({ id: "e3", adapterPath: join(files[3] as string, ".."), adapterHash: "h3" });
    const latest = gramFromBuffer(cache.get(`gram/${LATEST_GRAM_KEY}`) as Uint8Array, "cache");
    latest.values[1] = 1234; // h0·h1: reused, never recomputed
    cache.set(`gram/${LATEST_GRAM_KEY}`, gramToBuffer(latest));
    const second = await bankGram(bank, { threads: 1 });
    expect(second.hashes).toEqual(["h0", "h1", "h2", "h3"]);
    expect(second.entryValues[0 * 5 + 1]).toBe(1234);
    expect(second.entryValues[3 * 5 + 4]).toBeCloseTo(brute[0 * 7 + 3] as number, 10); // e0-copy × e3
    expect(second.entryValues[4 * 5 + 4]).toBeCloseTo(brute[3 * 7 + 3] as number, 10);
    // Cached now: a third call reads nothing (a broken adapter path would throw if it did).
    entries[0] = { ...entries[0]!, adapterPath: join(dir, "missing") };
    expect((await bankGram(bank, { threads: 1 })).entryValues).toEqual(second.entryValues);
  });

  it("matches brute force on the real gemma-3 fixtures that share a layout", async () => {
    const names = ["gemma3-270m_ao-wei_adapter", "gemma3-270m_ao-wei_seed123", "gemma3-270m_ao-wei_stage1"];
    const real = names.map((n) => readAllF32(join(PEFT_FIXTURES, n, "adapter_model.safetensors")));
    const tensors = (real[0] ?? []).map((t) => ({ name: t.name, shape: t.shape }));
    const g = await gramOfAdapters(
      names.map((n) => ({ file: join(PEFT_FIXTURES, n, "adapter_model.safetensors"), hash: n })),
      tensors,
      { threads: 1, blockBytes: 64 * 1024 },
    );
    expect(g.params).toBe(368640);
    expectClose(g.values, bruteGram(real.map(flatten)));
    expect(g.values[0]).toBeGreaterThan(0);
  });
});
