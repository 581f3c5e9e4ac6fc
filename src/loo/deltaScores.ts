import { throwIfAborted } from "../errors.js";
import { type Adapter, loraScaling } from "../formats/peft.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import {
  addSums,
  type ComparisonSums,
  compareModule,
  comparisonMetrics,
  deltaInner,
  type ModuleFactors,
  readModuleFactors,
} from "../merge/compare.js";
import { truncateLowRankSum } from "../merge/deltaSvd.js";
import { requireSameModules } from "../merge/sources.js";
import type { ProgressSink } from "../util/progress.js";
import { yieldToEventLoop } from "../util/yield.js";
import type { LooScores } from "./scores.js";

/**
 * One leave-one-out prediction to score in ΔW space: the target's index among the candidates and,
 * per merge mode, the (already selected, renormalised) weights over the candidates.
 */
export interface DeltaJob {
  target: number;
  linear?: Float64Array;
  cat?: Float64Array;
  svd?: Float64Array;
}

export interface DeltaJobScores {
  linear?: LooScores;
  cat?: LooScores;
  svd?: LooScores;
}

/**
 * A Mistral q_proj pair costs ~16 ms in `deltaInner`; yielding every few pairs and before each job
 * lets Ctrl-C's handler run (a synchronous loop would hold it off for the whole module).
 */
const PAIRS_PER_YIELD = 32;

function nonZero(w: Float64Array): number[] {
  const out: number[] = [];
  for (let j = 0; j < w.length; j++) if ((w[j] as number) !== 0) out.push(j);
  return out;
}

/**
 * Scores leave-one-out predictions in ΔW space without writing any adapter, module by module, with
 * one module of every adapter involved in memory:
 * - linear: the mixed factors Σ w_j A_j, Σ w_j B_j are formed in memory and compared through
 *   `deltaInner` (ΔW is never formed);
 * - cat is exact, ΔŴ = Σ_j w_j ΔW_j, so its scores follow from the inner products
 *   D_jl = ⟨ΔW_j, ΔW_l⟩ summed over modules (only the pairs some job needs are computed);
 * - delta-svd truncates Σ_j w_j ΔW_j per module (`truncateLowRankSum`) and compares the factors
 *   with `compareModule`, which also gives its parameter-space numbers.
 * `adapters` are the candidates (index = position); only those some job uses are read.
 */
export async function deltaScores({
  adapters,
  jobs,
  signal,
  progress,
}: {
  adapters: (Adapter | undefined)[];
  jobs: DeltaJob[];
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<DeltaJobScores[]> {
  const n = adapters.length;
  const needed = new Set<number>();
  const pairs = new Set<number>();
  const pairKey = (a: number, b: number) => (a <= b ? a * n + b : b * n + a);
  for (const job of jobs) {
    needed.add(job.target);
    pairs.add(pairKey(job.target, job.target));
    for (const w of [job.linear, job.svd]) if (w) for (const j of nonZero(w)) needed.add(j);
    if (job.cat) {
      const set = nonZero(job.cat);
      for (const j of set) {
        needed.add(j);
        pairs.add(pairKey(j, job.target));
        for (const l of set) if (j <= l) pairs.add(pairKey(j, l));
      }
    }
  }
  const order = [...needed].sort((a, b) => a - b);
  const used = order.map((i) => {
    const adapter = adapters[i];
    if (!adapter) throw new Error(`deltaScores: candidate ${i} is needed but not loaded`);
    return { adapter, weight: 1, scaling: loraScaling(adapter.config) };
  });
  if (used.length === 0) return jobs.map(() => ({}));
  const modules = requireSameModules(used);
  const slot = new Map(order.map((i, k) => [i, k]));
  const pairList = [...pairs];
  const inner = new Map<number, number>(pairList.map((k) => [k, 0]));
  const zero = (): ComparisonSums => ({
    param: { dot: 0, xx: 0, yy: 0, diff2: 0 },
    delta: { dot: 0, xx: 0, yy: 0 },
  });
  const linear = jobs.map(() => ({ dot: 0, xx: 0 }));
  const svd = jobs.map(zero);

  const readers: SafetensorsReader[] = [];
  try {
    for (const { adapter } of used) readers.push(await SafetensorsReader.open(adapter.file));
    const names = [...modules.keys()];
    for (const [m, name] of names.entries()) {
      throwIfAborted(signal);
      const list = modules.get(name) as NonNullable<ReturnType<typeof modules.get>>;
      const factors: ModuleFactors[] = [];
      for (const [k, mod] of list.entries()) {
        factors.push(
          await readModuleFactors(
            readers[k] as SafetensorsReader,
            mod,
            (used[k] as (typeof used)[number]).scaling,
          ),
        );
      }
      const f = (i: number) => factors[slot.get(i) as number] as ModuleFactors;
      for (const [p, key] of pairList.entries()) {
        if (p % PAIRS_PER_YIELD === PAIRS_PER_YIELD - 1) await yieldToEventLoop(signal);
        const a = Math.floor(key / n);
        inner.set(key, (inner.get(key) as number) + deltaInner(f(a), f(key - a * n)));
      }
      for (const [q, job] of jobs.entries()) {
        await yieldToEventLoop(signal);
        const y = f(job.target);
        if (job.linear) {
          const mix = mixFactors(job.linear, f);
          const s = linear[q] as { dot: number; xx: number };
          s.dot += deltaInner(mix, y);
          s.xx += deltaInner(mix, mix);
        }
        if (job.svd) {
          const set = nonZero(job.svd);
          const first = f(set[0] as number);
          const { a, b } = truncateLowRankSum({
            terms: set.map((j) => {
              const x = f(j);
              return { a: x.a, b: x.b, r: x.r, coeff: (job.svd as Float64Array)[j]! * x.scale };
            }),
            outFeatures: y.outFeatures,
            inFeatures: y.inFeatures,
            rank: first.r,
            scale: first.scale,
          });
          const predicted = { ...first, a, b };
          svd[q] = addSums(svd[q] as ComparisonSums, compareModule(predicted, y));
        }
      }
      progress?.({ phase: "loo ΔW", done: m + 1, total: names.length, unit: "modules" });
    }
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }

  const d = (a: number, b: number) => inner.get(pairKey(a, b)) as number;
  return jobs.map((job, q) => {
    const yy = d(job.target, job.target);
    const out: DeltaJobScores = {};
    if (job.linear) {
      const s = linear[q] as { dot: number; xx: number };
      out.linear = { ...comparisonMetrics({ param: null, delta: { dot: s.dot, xx: s.xx, yy } }) };
    }
    if (job.cat) {
      const set = nonZero(job.cat);
      let dot = 0;
      let xx = 0;
      for (const j of set) {
        const wj = job.cat[j] as number;
        dot += wj * d(j, job.target);
        for (const l of set) xx += wj * (job.cat[l] as number) * d(j, l);
      }
      out.cat = comparisonMetrics({ param: null, delta: { dot, xx, yy } });
    }
    if (job.svd) out.svd = comparisonMetrics(svd[q] as ComparisonSums);
    return out;
  });
}

/** Σ_j w_j A_j and Σ_j w_j B_j of one module, accumulated in float64. */
function mixFactors(weights: Float64Array, f: (i: number) => ModuleFactors): ModuleFactors {
  const set = nonZero(weights);
  const first = f(set[0] as number);
  const a = new Float64Array(first.a.length);
  const b = new Float64Array(first.b.length);
  for (const j of set) {
    const w = weights[j] as number;
    const x = f(j);
    for (let k = 0; k < a.length; k++) a[k] = (a[k] as number) + w * (x.a[k] as number);
    for (let k = 0; k < b.length; k++) b[k] = (b[k] as number) + w * (x.b[k] as number);
  }
  return { ...first, a: Float32Array.from(a), b: Float32Array.from(b) };
}
