import { throwIfAborted } from "../errors.js";
import { type Adapter, type LoraModule, loadAdapter, loraScaling } from "../formats/peft.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import { requireSameModules } from "./sources.js";

/** One LoRA module's factors: `a` is [r, in] and `b` is [out, r], row-major; ΔW = scale·B·A. */
export interface ModuleFactors {
  a: Float32Array;
  b: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
}

/** Float64 sums from which the comparison metrics follow; they add up over modules. */
export interface ComparisonSums {
  /** Flattened parameters; null when the shapes differ (e.g. a cat output against a rank-r adapter). */
  param: { dot: number; xx: number; yy: number; diff2: number } | null;
  delta: { dot: number; xx: number; yy: number };
}

export interface AdapterComparison {
  /** Cosine of the flattened parameter vectors (all A and B tensors); null when shapes differ. */
  paramCosine: number | null;
  /** ‖x − y‖ / ‖y‖ over the flattened parameters, y the reference; null when shapes differ. */
  paramRelL2: number | null;
  /** Cosine of the concatenated ΔW = s·B·A of all modules. */
  deltaCosine: number;
  /** ‖ΔW_x − ΔW_y‖_F / ‖ΔW_y‖_F. */
  deltaRelL2: number;
}

/** One module's factors of an adapter, read from its open safetensors file, with its LoRA scale. */
export async function readModuleFactors(
  reader: SafetensorsReader,
  mod: LoraModule,
  scale: number,
): Promise<ModuleFactors> {
  return {
    a: await reader.readF32(mod.a),
    b: await reader.readF32(mod.b),
    r: mod.r,
    inFeatures: mod.inFeatures,
    outFeatures: mod.outFeatures,
    scale,
  };
}

/** ⟨s_x B_x A_x, s_y B_y A_y⟩_F = s_x s_y · Σ_cd (B_xᵀB_y)_cd (A_x A_yᵀ)_cd, never forming ΔW. */
export function deltaInner(x: ModuleFactors, y: ModuleFactors): number {
  let sum = 0;
  for (let c = 0; c < x.r; c++) {
    for (let d = 0; d < y.r; d++) {
      let bb = 0;
      for (let i = 0; i < x.outFeatures; i++)
        bb += (x.b[i * x.r + c] as number) * (y.b[i * y.r + d] as number);
      let aa = 0;
      const ac = c * x.inFeatures;
      const ad = d * y.inFeatures;
      for (let l = 0; l < x.inFeatures; l++) aa += (x.a[ac + l] as number) * (y.a[ad + l] as number);
      sum += bb * aa;
    }
  }
  return x.scale * y.scale * sum;
}

/** The comparison sums of one module (x the candidate, y the reference). */
export function compareModule(x: ModuleFactors, y: ModuleFactors): ComparisonSums {
  if (x.inFeatures !== y.inFeatures || x.outFeatures !== y.outFeatures) {
    throw new RangeError(
      `compareModule: ${x.outFeatures}×${x.inFeatures} against ${y.outFeatures}×${y.inFeatures}`,
    );
  }
  let param: ComparisonSums["param"] = null;
  if (x.r === y.r) {
    param = { dot: 0, xx: 0, yy: 0, diff2: 0 };
    for (const [u, v] of [
      [x.a, y.a],
      [x.b, y.b],
    ] as const) {
      for (let i = 0; i < u.length; i++) {
        const p = u[i] as number;
        const q = v[i] as number;
        param.dot += p * q;
        param.xx += p * p;
        param.yy += q * q;
        param.diff2 += (p - q) * (p - q);
      }
    }
  }
  return { param, delta: { dot: deltaInner(x, y), xx: deltaInner(x, x), yy: deltaInner(y, y) } };
}

export function addSums(total: ComparisonSums, s: ComparisonSums): ComparisonSums {
  const param =
    total.param && s.param
      ? {
          dot: total.param.dot + s.param.dot,
          xx: total.param.xx + s.param.xx,
          yy: total.param.yy + s.param.yy,
          diff2: total.param.diff2 + s.param.diff2,
        }
      : null;
  return {
    param,
    delta: {
      dot: total.delta.dot + s.delta.dot,
      xx: total.delta.xx + s.delta.xx,
      yy: total.delta.yy + s.delta.yy,
    },
  };
}

export function comparisonMetrics(s: ComparisonSums): AdapterComparison {
  const cosine = (dot: number, xx: number, yy: number) => (xx > 0 && yy > 0 ? dot / Math.sqrt(xx * yy) : 0);
  // ‖ΔW_x − ΔW_y‖² from the Gram terms can come out a rounding error below 0 when they agree.
  const deltaDiff2 = Math.max(0, s.delta.xx + s.delta.yy - 2 * s.delta.dot);
  return {
    paramCosine: s.param ? cosine(s.param.dot, s.param.xx, s.param.yy) : null,
    paramRelL2: s.param ? Math.sqrt(s.param.diff2 / s.param.yy) : null,
    deltaCosine: cosine(s.delta.dot, s.delta.xx, s.delta.yy),
    deltaRelL2: Math.sqrt(deltaDiff2 / s.delta.yy),
  };
}

/**
 * Compares a candidate adapter `x` (e.g. a leave-one-out prediction) with a reference `y` over
 * all modules: cosine and relative L2 error of the flattened parameters and of ΔW. Streams one
 * module at a time.
 */
export async function compareAdapters(
  x: Adapter | string,
  y: Adapter | string,
  { signal }: { signal?: AbortSignal } = {},
): Promise<AdapterComparison> {
  const ax = typeof x === "string" ? await loadAdapter(x) : x;
  const ay = typeof y === "string" ? await loadAdapter(y) : y;
  const sx = loraScaling(ax.config);
  const sy = loraScaling(ay.config);
  const modules = requireSameModules([
    { adapter: ax, weight: 1, scaling: sx },
    { adapter: ay, weight: 1, scaling: sy },
  ]);
  const rx = await SafetensorsReader.open(ax.file);
  try {
    const ry = await SafetensorsReader.open(ay.file);
    try {
      let total: ComparisonSums = {
        param: { dot: 0, xx: 0, yy: 0, diff2: 0 },
        delta: { dot: 0, xx: 0, yy: 0 },
      };
      for (const [mx, my] of modules.values()) {
        throwIfAborted(signal);
        if (!mx || !my) continue;
        const fx = { ...mx, a: await rx.readF32(mx.a), b: await rx.readF32(mx.b), scale: sx };
        const fy = { ...my, a: await ry.readF32(my.a), b: await ry.readF32(my.b), scale: sy };
        total = addSums(total, compareModule(fx, fy));
      }
      return comparisonMetrics(total);
    } finally {
      await ry.close();
    }
  } finally {
    await rx.close();
  }
}
