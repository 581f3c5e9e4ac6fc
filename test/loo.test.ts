import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../src/bank/add.js";
import { indexBank } from "../src/bank/indexBank.js";
import { type Bank, initBank } from "../src/bank/store.js";
import { bankDistanceMatrix } from "../src/distances/matrix.js";
import { type LooResult, type LooRow, runLoo } from "../src/loo/runLoo.js";
import { compareAdapters } from "../src/merge/compare.js";
import { mixAdapters } from "../src/merge/mixAdapters.js";
import { coefficientHeatmap, heatmapColor, MASKED_COLOR } from "../src/report/heatmap.js";
import { crc32 } from "../src/report/png.js";
import { synthBank } from "../src/synth/synthBank.js";
import { trainBankMlp } from "../src/weights/bankMlp.js";
import { mlpForward } from "../src/weights/mlp.js";
import { readSafetensorsF32 } from "./helpers/safetensors.js";
import { SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/** Small real Super-NI tasks; synthetic tiny adapters share structure by category. */
const TASKS = [
  "task1319_country_by_barcode_prefix",
  "task628_xlwic_word_with_different_meaning_sentence_generation",
  "task1582_bless_hypernym_generation",
  "task1403_check_validity_date_mmddyyyy",
  "task1148_maximum_ascii_value",
];
/** tiny layout: r = 4, alpha = 8. */
const SCALE = 2;

let tmp: { dir: string; cleanup: () => Promise<void> };
let bank: Bank;
let ids: string[];
let adapters: Map<string, Float32Array>[];
let result: LooResult;
beforeAll(async () => {
  tmp = await tempDir("loramix-loo-");
  const tasks = join(tmp.dir, "tasks");
  mkdirSync(tasks);
  for (const t of TASKS) symlinkSync(join(SNI_DIR, `${t}.json`), join(tasks, `${t}.json`));
  const synth = await synthBank({
    dir: join(tmp.dir, "synth"),
    data: tasks,
    entries: TASKS.length,
    layout: "tiny",
  });
  bank = await initBank(join(tmp.dir, "bank"), { tokenizer: TINY_MODEL });
  for (const e of synth.entries) await addEntry(bank, { id: e.id, data: e.dataPath, adapter: e.adapterDir });
  await indexBank(bank, { threads: 1 });
  ids = bank.entries().map((e) => e.id);
  adapters = ids.map((id) =>
    readAll(join(bank.entry(id)!.adapterPath as string, "adapter_model.safetensors")),
  );
  result = await runLoo(bank, {
    metrics: ["js", "wd"],
    methods: ["attentional", "normalized", "neural"],
    out: join(tmp.dir, "loo"),
  });
}, 60_000);
afterAll(async () => {
  bank?.close();
  await tmp.cleanup();
});

const names = () => [...(adapters[0] as Map<string, Float32Array>).keys()].sort();
const modules = () =>
  names()
    .filter((k) => k.endsWith(".lora_A.weight"))
    .map((k) => k.slice(0, -".lora_A.weight".length));

/** Σ_j w_j T_j of every tensor, float64. */
function mixDense(w: number[]): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const name of names()) {
    const acc = new Float64Array((adapters[0] as Map<string, Float32Array>).get(name)!.length);
    w.forEach((wj, j) => {
      const t = adapters[j]!.get(name)!;
      for (let k = 0; k < acc.length; k++) acc[k] = (acc[k] as number) + wj * (t[k] as number);
    });
    out.set(name, acc);
  }
  return out;
}

/** ΔW = s·B·A, with A [r, in] and B [out, r]. */
function delta(a: ArrayLike<number>, b: ArrayLike<number>, r: number): Float64Array {
  const inF = a.length / r;
  const out = b.length / r;
  const w = new Float64Array(out * inF);
  for (let i = 0; i < out; i++)
    for (let c = 0; c < r; c++)
      for (let l = 0; l < inF; l++)
        w[i * inF + l] =
          (w[i * inF + l] as number) + SCALE * (b[i * r + c] as number) * (a[c * inF + l] as number);
  return w;
}

function cosRel(x: ArrayLike<number>[], y: ArrayLike<number>[]): { cos: number; rel: number } {
  let dot = 0;
  let xx = 0;
  let yy = 0;
  let dd = 0;
  x.forEach((xs, t) => {
    const ys = y[t] as ArrayLike<number>;
    for (let k = 0; k < xs.length; k++) {
      const p = xs[k] as number;
      const q = ys[k] as number;
      dot += p * q;
      xx += p * p;
      yy += q * q;
      dd += (p - q) ** 2;
    }
  });
  return { cos: dot / Math.sqrt(xx * yy), rel: Math.sqrt(dd / yy) };
}

describe("runLoo", () => {
  it("weights are the SPEC §4 normalized row (self in the statistics, then masked)", async () => {
    const dist = await bankDistanceMatrix(bank, { metric: "js" });
    const n = ids.length;
    for (const [i, id] of ids.entries()) {
      const d = Array.from(dist.values.subarray(i * n, (i + 1) * n));
      const mean = d.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      const e = d.map((x, j) => (j === i ? 0 : Math.exp(-(x - mean) / std)));
      const sum = e.reduce((a, b) => a + b, 0);
      const row = result.rows.find((r) => r.target === id && r.metric === "js" && r.method === "normalized")!;
      for (const [j, w] of row.weights.entries()) expect(w).toBeCloseTo((e[j] as number) / sum, 12);
    }
  });

  it("linear parameter numbers from the Gram matrix equal dense mixing; ΔW numbers of linear and cat too", () => {
    expect(result.rows).toHaveLength(ids.length * 4);
    for (const row of result.rows) {
      const i = ids.indexOf(row.target);
      const target = adapters[i] as Map<string, Float32Array>;
      const mixed = mixDense(row.weights);
      const p = cosRel(
        names().map((k) => mixed.get(k)!),
        names().map((k) => target.get(k)!),
      );
      const linear = row.merges.linear!;
      expect(Math.abs((linear.paramCosine as number) - p.cos)).toBeLessThan(1e-10);
      expect(Math.abs((linear.paramRelL2 as number) - p.rel)).toBeLessThan(1e-10);
      const real = modules().map((m) =>
        delta(target.get(`${m}.lora_A.weight`)!, target.get(`${m}.lora_B.weight`)!, 4),
      );
      const lin = modules().map((m) =>
        delta(mixed.get(`${m}.lora_A.weight`)!, mixed.get(`${m}.lora_B.weight`)!, 4),
      );
      const dl = cosRel(lin, real);
      expect(Math.abs(linear.deltaCosine - dl.cos)).toBeLessThan(1e-6);
      expect(Math.abs(linear.deltaRelL2 - dl.rel)).toBeLessThan(1e-6);
      const cat = modules().map((m, t) => {
        const sum = new Float64Array(real[t]!.length);
        row.weights.forEach((w, j) => {
          const dj = delta(
            adapters[j]!.get(`${m}.lora_A.weight`)!,
            adapters[j]!.get(`${m}.lora_B.weight`)!,
            4,
          );
          for (let k = 0; k < sum.length; k++) sum[k] = (sum[k] as number) + w * (dj[k] as number);
        });
        return sum;
      });
      const dc = cosRel(cat, real);
      expect(Math.abs(row.merges.cat!.deltaCosine - dc.cos)).toBeLessThan(1e-9);
      expect(Math.abs(row.merges.cat!.deltaRelL2 - dc.rel)).toBeLessThan(1e-9);
      expect(row.merges.cat!.paramCosine).toBeNull();
    }
  });

  it("agrees with writing the adapters (linear, delta-svd) and comparing them", async () => {
    const row = result.rows.find((r) => r.metric === "wd" && r.method === "attentional") as LooRow;
    const dirs = ids.map((id) => bank.entry(id)!.adapterPath as string);
    const real = dirs[ids.indexOf(row.target)] as string;
    for (const mode of ["linear", "delta-svd"] as const) {
      const out = join(tmp.dir, `mixed-${mode}`);
      await mixAdapters({ adapters: dirs, weights: row.weights, mode, out });
      const c = await compareAdapters(out, real);
      const s = row.merges[mode]!;
      expect(Math.abs((s.paramCosine as number) - (c.paramCosine as number))).toBeLessThan(1e-6);
      expect(Math.abs((s.paramRelL2 as number) - (c.paramRelL2 as number))).toBeLessThan(1e-6);
      expect(Math.abs(s.deltaCosine - c.deltaCosine)).toBeLessThan(1e-5);
      expect(Math.abs(s.deltaRelL2 - c.deltaRelL2)).toBeLessThan(1e-5);
    }
  });

  it("skips neural without a trained MLP and says so", () => {
    const skipped = result.configurations.filter((c) => c.skipped);
    expect(skipped.map((c) => `${c.metric}/${c.method}`)).toEqual(["js/neural", "wd/neural"]);
    expect(result.notes.join("\n")).toContain("loramix train-mlp");
    expect(result.rows.some((r) => r.method === "neural")).toBe(false);
  });

  it("writes results.json, summary.md/html and heatmap PNGs that decode to the weights", () => {
    const out = join(tmp.dir, "loo");
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(json.candidates).toEqual(ids);
    expect(json.rows).toHaveLength(result.rows.length);
    const md = readFileSync(join(out, "summary.md"), "utf8");
    expect(md).toContain("| method | js | wd |");
    expect(md).toContain("## linear: cosine similarity, flattened parameters");
    const normalizedJs = result.rows.filter((r) => r.metric === "js" && r.method === "normalized");
    const values = normalizedJs.map((r) => r.merges.linear!.paramCosine as number);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(md.split("## linear: cosine similarity, flattened")[1]).toContain(
      `${mean.toFixed(4)} ± ${std.toFixed(4)}`,
    );
    const html = readFileSync(join(out, "summary.html"), "utf8");
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(4);
    expect(html).not.toMatch(/(src|href)="(?!data:)/);

    const png = readFileSync(join(out, "heatmap-js-normalized.png"));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.toString("latin1", 12, 16)).toBe("IHDR");
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    const cell = width / ids.length;
    expect(Number.isInteger(cell) && cell >= 1).toBe(true);
    expect(height).toBe(ids.length * cell);
    expect(png.readUInt32BE(29)).toBe(crc32(png.subarray(12, 29)));
    const idat: Buffer[] = [];
    for (let at = 8; at < png.length; ) {
      const length = png.readUInt32BE(at);
      if (png.toString("latin1", at + 4, at + 8) === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length));
      at += 12 + length;
    }
    const raw = inflateSync(Buffer.concat(idat));
    expect(raw.length).toBe(height * (1 + 3 * width));
    const pixel = (x: number, y: number) => [
      ...raw.subarray(y * (1 + 3 * width) + 1 + 3 * x, y * (1 + 3 * width) + 4 + 3 * x),
    ];
    const max = Math.max(...normalizedJs.flatMap((r) => r.weights));
    const [r, c] = [3, 1];
    expect(pixel(c * cell + Math.floor(cell / 2), r * cell)).toEqual(
      heatmapColor(normalizedJs[r]!.weights[c]! / max),
    );
    expect(pixel(2 * cell, 2 * cell + cell - 1)).toEqual([...MASKED_COLOR]);
  });

  it("evaluates a subset of targets against every candidate", async () => {
    const sub = await runLoo(bank, {
      entries: [ids[1] as string, ids[3] as string],
      merges: ["linear"],
      out: join(tmp.dir, "loo-sub"),
    });
    expect(sub.rows.map((r) => r.target)).toEqual([ids[1], ids[3]]);
    const same = result.rows.find(
      (r) => r.target === ids[3] && r.metric === "js" && r.method === "normalized",
    )!;
    expect(sub.rows[1]!.merges.linear).toEqual(same.merges.linear);
    const png = readFileSync(join(tmp.dir, "loo-sub", "heatmap-js-normalized.png"));
    expect(png.readUInt32BE(16) / png.readUInt32BE(20)).toBe(ids.length / 2);
    await expect(runLoo(bank, { entries: ["nope"], out: join(tmp.dir, "x") })).rejects.toThrow(
      'no entry "nope"',
    );
    const controller = new AbortController();
    controller.abort();
    await expect(runLoo(bank, { out: join(tmp.dir, "aborted"), signal: controller.signal })).rejects.toThrow(
      "interrupted",
    );
    expect(existsSync(join(tmp.dir, "aborted"))).toBe(false);
  });

  it("uses the bank's trained MLP for neural and marks each target's MLP split", async () => {
    const dist = await bankDistanceMatrix(bank, { metric: "js" });
    const { mlp } = await trainBankMlp(bank, dist, { metric: "js", hidden: 8, epochs: 3 });
    const loo = await runLoo(bank, {
      methods: ["neural"],
      merges: ["linear"],
      mlpHidden: 8,
      out: join(tmp.dir, "loo-neural"),
    });
    expect(loo.configurations).toEqual([
      { metric: "js", method: "neural", heatmap: "heatmap-js-neural.png" },
    ]);
    const n = ids.length;
    for (const row of loo.rows) {
      const i = ids.indexOf(row.target);
      expect(row.mlpSplit).toBe(mlp.meta.trainIds.includes(row.target) ? "train" : "valid");
      const d = Array.from(dist.values.subarray(i * n, (i + 1) * n));
      const mean = d.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      const f = mlpForward(
        mlp,
        d.map((x) => (x - mean) / std),
      );
      const e = d.map((_, j) => (j === i ? 0 : Math.exp(-(f[j] as number))));
      const sum = e.reduce((a, b) => a + b, 0);
      for (const [j, w] of row.weights.entries()) expect(w).toBeCloseTo((e[j] as number) / sum, 12);
    }
  }, 30_000);
});

/** Tensor values only, by name. */
function readAll(file: string): Map<string, Float32Array> {
  return new Map([...readSafetensorsF32(file)].map(([name, t]) => [name, t.data]));
}

describe("coefficientHeatmap", () => {
  it("draws on a given scale, so figures side by side share their colours", () => {
    const own = coefficientHeatmap([0.25, 0.5], 1, 2);
    const shared = coefficientHeatmap([0.25, 0.5], 1, 2, undefined, 1);
    expect(own.max).toBe(0.5);
    expect(shared.max).toBe(1);
    // Same ratios to the scale, same picture; the own-maximum picture is brighter.
    expect(shared.png.equals(coefficientHeatmap([0.5, 1], 1, 2, undefined, 2).png)).toBe(true);
    expect(shared.png.equals(own.png)).toBe(false);
  });
});
