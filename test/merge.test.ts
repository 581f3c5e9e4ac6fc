import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { compareAdapters } from "../src/merge/compare.js";
import { mixAdapters } from "../src/merge/mixAdapters.js";
import { SYNTHETIC_MARKER } from "../src/merge/sources.js";
import { synthBank } from "../src/synth/synthBank.js";
import { readSafetensorsF32 } from "./helpers/safetensors.js";
import { PEFT_FIXTURES, SNI_DIR, tempDir } from "./helpers/shared.js";

function config(
  dir: string,
): { r: number; lora_alpha: number; use_rslora?: boolean } & Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
}

/** Dense ΔW = s·B·A (row-major out × in), float64. */
function denseDelta(
  tensors: ReturnType<typeof readSafetensorsF32>,
  module: string,
  scale: number,
): Float64Array {
  const a = tensors.get(`${module}.lora_A.weight`);
  const b = tensors.get(`${module}.lora_B.weight`);
  if (!a || !b) throw new Error(`no ${module}`);
  const [r, inF] = a.shape as [number, number];
  const out = b.shape[0] as number;
  const w = new Float64Array(out * inF);
  for (let i = 0; i < out; i++)
    for (let c = 0; c < r; c++) {
      const f = scale * (b.data[i * r + c] as number);
      for (let l = 0; l < inF; l++)
        w[i * inF + l] = (w[i * inF + l] as number) + f * (a.data[c * inF + l] as number);
    }
  return w;
}

const modulesOf = (tensors: ReturnType<typeof readSafetensorsF32>) =>
  [...tensors.keys()]
    .filter((k) => k.endsWith(".lora_A.weight"))
    .map((k) => k.slice(0, -".lora_A.weight".length));

const GEMMA = ["gemma3-270m_ao-wei_adapter", "gemma3-270m_ao-wei_seed123", "gemma3-270m_ao-wei_stage1"].map(
  (d) => join(PEFT_FIXTURES, d),
);

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir("loramix-merge-");
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("mixAdapters linear", () => {
  it("equals Σ w_j T_j tensor by tensor on the gemma fixtures", async () => {
    const weights = [0.5, -0.25, 0.75];
    const out = join(tmp.dir, "linear");
    const result = await mixAdapters({ adapters: GEMMA, weights, out, record: { method: "test" } });
    expect(result.used).toBe(3);
    const inputs = GEMMA.map((d) => readSafetensorsF32(join(d, "adapter_model.safetensors")));
    const mixed = readSafetensorsF32(join(out, "adapter_model.safetensors"));
    expect([...mixed.keys()].sort()).toEqual([...(inputs[0] as Map<string, unknown>).keys()].sort());
    let maxErr = 0;
    for (const [name, t] of mixed) {
      for (let i = 0; i < t.data.length; i++) {
        let sum = 0;
        inputs.forEach((m, j) => {
          sum += (weights[j] as number) * (m.get(name)?.data[i] as number);
        });
        maxErr = Math.max(maxErr, Math.abs((t.data[i] as number) - sum) / Math.max(1e-30, Math.abs(sum)));
      }
    }
    // Float64 accumulation: only the final rounding to float32 remains.
    expect(maxErr).toBeLessThan(1e-7);
    expect(config(out)).toEqual(config(GEMMA[0] as string));
    const record = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8"));
    expect(record.method).toBe("test");
    expect(record.mix.sources.map((s: { weight: number }) => s.weight)).toEqual(weights);
    expect(record.synthetic).toBeUndefined();
  });

  it("skips zero weights and refuses adapters of another layout", async () => {
    const out = join(tmp.dir, "skip");
    const other = join(PEFT_FIXTURES, "gemma3-270m_0112LY");
    // The other layout has weight 0: never read, so the mix works and equals 1 × the first.
    const result = await mixAdapters({ adapters: [GEMMA[0] as string, other], weights: [1, 0], out });
    expect(result.used).toBe(1);
    const a = readSafetensorsF32(join(GEMMA[0] as string, "adapter_model.safetensors"));
    for (const [name, t] of readSafetensorsF32(join(out, "adapter_model.safetensors")))
      expect(t.data).toEqual(a.get(name)?.data);
    await expect(
      mixAdapters({ adapters: [GEMMA[0] as string, other], weights: [1, 1], out: join(tmp.dir, "bad") }),
    ).rejects.toThrow(/layout differs/);
    expect(existsSync(join(tmp.dir, "bad"))).toBe(false);
    await expect(
      mixAdapters({ adapters: GEMMA, weights: [0, 0, 0], out: join(tmp.dir, "zero") }),
    ).rejects.toThrow(/every mixing weight is 0/);
    await expect(mixAdapters({ adapters: GEMMA, weights: [1, 2], out: join(tmp.dir, "n") })).rejects.toThrow(
      /3 adapters but 2 weights/,
    );
  });

  it("leaves no output and no temporary directory when interrupted after the first tensor", async () => {
    const parent = join(tmp.dir, "abort");
    const out = join(parent, "mix");
    for (const mode of ["linear", "delta-svd", "cat"] as const) {
      const controller = new AbortController();
      const run = mixAdapters({
        adapters: GEMMA,
        weights: [1, 1, 1],
        mode,
        out,
        signal: controller.signal,
        progress: () => controller.abort(),
      });
      await expect(run).rejects.toSatisfy((e) => e instanceof LoramixError && e.code === "ABORTED");
      expect(existsSync(out)).toBe(false);
      expect(existsSync(parent) ? readdirSync(parent) : []).toEqual([]);
    }
  });
});

describe("mixAdapters cat", () => {
  it("reproduces Σ w_j ΔW_j exactly at rank Σ r_j", async () => {
    const weights = [0.6, -0.3, 0.2];
    const out = join(tmp.dir, "cat");
    const result = await mixAdapters({ adapters: GEMMA, weights, mode: "cat", out });
    expect(result.rank).toBe(12);
    const cfg = config(out);
    expect(cfg.r).toBe(12);
    expect(cfg.lora_alpha).toBe(12);
    expect(cfg.use_rslora).toBe(false);
    const inputs = GEMMA.map((d) => readSafetensorsF32(join(d, "adapter_model.safetensors")));
    const scales = GEMMA.map((d) => config(d).lora_alpha / config(d).r);
    const mixed = readSafetensorsF32(join(out, "adapter_model.safetensors"));
    const modules = modulesOf(mixed);
    expect(modules.length).toBe(72);
    // Every fourth module keeps the test fast while covering q, k, v and o shapes.
    for (const module of modules.filter((_, i) => i % 4 === 0)) {
      const got = denseDelta(mixed, module, 1);
      const want = new Float64Array(got.length);
      inputs.forEach((m, j) => {
        const d = denseDelta(m, module, (weights[j] as number) * (scales[j] as number));
        for (let i = 0; i < d.length; i++) want[i] = (want[i] as number) + (d[i] as number);
      });
      let err = 0;
      let norm = 0;
      for (let i = 0; i < want.length; i++) {
        err += ((got[i] as number) - (want[i] as number)) ** 2;
        norm += (want[i] as number) ** 2;
      }
      expect(norm).toBeGreaterThan(0);
      expect(Math.sqrt(err / norm)).toBeLessThan(1e-6);
    }
  });
});

describe("delta-svd and compareAdapters on synthetic adapters", () => {
  let adapters: string[] = [];
  beforeAll(async () => {
    const bank = await synthBank({
      dir: join(tmp.dir, "bank"),
      data: SNI_DIR,
      entries: 3,
      layout: "tiny",
      seed: 7,
    });
    adapters = bank.entries.map((e) => e.adapterDir);
  });

  it("writes the best rank-r approximation of Σ w_j ΔW_j", async () => {
    const weights = [0.5, 0.3, -0.4];
    const out = join(tmp.dir, "dsvd");
    const result = await mixAdapters({ adapters, weights, mode: "delta-svd", out });
    expect(result.rank).toBe(4);
    expect(result.synthetic).toBe(true);
    expect(existsSync(join(out, SYNTHETIC_MARKER))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "loramix.json"), "utf8")).synthetic).toBe(true);
    const cfg = config(out);
    expect(cfg).toEqual(config(adapters[0] as string));
    const scale = cfg.lora_alpha / cfg.r;
    const inputs = adapters.map((d) => readSafetensorsF32(join(d, "adapter_model.safetensors")));
    const mixed = readSafetensorsF32(join(out, "adapter_model.safetensors"));
    for (const module of modulesOf(mixed)) {
      const want = new Float64Array(denseDelta(mixed, module, 1).length);
      inputs.forEach((m, j) => {
        const d = denseDelta(m, module, (weights[j] as number) * scale);
        for (let i = 0; i < d.length; i++) want[i] = (want[i] as number) + (d[i] as number);
      });
      const got = denseDelta(mixed, module, scale);
      const inF = mixed.get(`${module}.lora_A.weight`)?.shape[1] as number;
      const sigma = singularValues(want, want.length / inF, inF);
      const best = Math.sqrt(sigma.slice(4).reduce((s, x) => s + x * x, 0));
      let err = 0;
      for (let i = 0; i < want.length; i++) err += ((got[i] as number) - (want[i] as number)) ** 2;
      expect(best).toBeGreaterThan(0);
      expect(Math.abs(Math.sqrt(err) - best)).toBeLessThan(1e-5 * (sigma[0] as number));
    }
  });

  it("compareAdapters matches dense cosines and relative errors", async () => {
    const [x, y] = adapters as [string, string];
    const got = await compareAdapters(x, y);
    const tx = readSafetensorsF32(join(x, "adapter_model.safetensors"));
    const ty = readSafetensorsF32(join(y, "adapter_model.safetensors"));
    let dot = 0;
    let xx = 0;
    let yy = 0;
    let diff = 0;
    for (const [name, t] of tx) {
      const u = ty.get(name)?.data as Float32Array;
      t.data.forEach((p, i) => {
        const q = u[i] as number;
        dot += p * q;
        xx += p * p;
        yy += q * q;
        diff += (p - q) ** 2;
      });
    }
    expect(got.paramCosine).toBeCloseTo(dot / Math.sqrt(xx * yy), 10);
    expect(got.paramRelL2).toBeCloseTo(Math.sqrt(diff / yy), 10);
    const s = config(x).lora_alpha / config(x).r;
    let ddot = 0;
    let dxx = 0;
    let dyy = 0;
    let ddiff = 0;
    for (const module of modulesOf(tx)) {
      const dx = denseDelta(tx, module, s);
      const dy = denseDelta(ty, module, s);
      dx.forEach((p, i) => {
        const q = dy[i] as number;
        ddot += p * q;
        dxx += p * p;
        dyy += q * q;
        ddiff += (p - q) ** 2;
      });
    }
    expect(got.deltaCosine).toBeCloseTo(ddot / Math.sqrt(dxx * dyy), 9);
    expect(got.deltaRelL2).toBeCloseTo(Math.sqrt(ddiff / dyy), 8);
    const self = await compareAdapters(x, x);
    expect(self.paramCosine).toBeCloseTo(1, 12);
    expect(self.paramRelL2).toBe(0);
    expect(self.deltaRelL2).toBeLessThan(1e-6);
  });
});

/** Singular values of a row-major rows × cols matrix via two-sided Jacobi on its Gram matrix. */
function singularValues(w: Float64Array, rows: number, cols: number): number[] {
  const n = Math.min(rows, cols);
  const g = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      if (cols <= rows)
        for (let k = 0; k < rows; k++) sum += (w[k * cols + i] as number) * (w[k * cols + j] as number);
      else for (let k = 0; k < cols; k++) sum += (w[i * cols + k] as number) * (w[j * cols + k] as number);
      (g[i] as Float64Array)[j] = sum;
    }
  const at = (i: number, j: number) => (g[i] as Float64Array)[j] as number;
  const set = (i: number, j: number, v: number) => {
    (g[i] as Float64Array)[j] = v;
  };
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (i === j) diag += at(i, i) ** 2;
        else off += at(i, j) ** 2;
      }
    if (off <= 1e-30 * diag) break;
    for (let p = 0; p < n - 1; p++)
      for (let q = p + 1; q < n; q++) {
        if (at(p, q) === 0) continue;
        const theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const kp = at(k, p);
          const kq = at(k, q);
          set(k, p, c * kp - s * kq);
          set(k, q, s * kp + c * kq);
        }
        for (let k = 0; k < n; k++) {
          const pk = at(p, k);
          const qk = at(q, k);
          set(p, k, c * pk - s * qk);
          set(q, k, s * pk + c * qk);
        }
      }
  }
  return Array.from({ length: n }, (_, i) => Math.sqrt(Math.max(0, at(i, i)))).sort((x, y) => y - x);
}
