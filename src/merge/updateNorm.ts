import { throwIfAborted } from "../errors.js";
import { type Adapter, loraScaling } from "../formats/peft.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import { yieldToEventLoop } from "../util/yield.js";
import { deltaInner, type ModuleFactors, readModuleFactors } from "./compare.js";
import { requireSameModules } from "./sources.js";

/**
 * Multiply-adds of `deltaInner` allowed for the ratio (~10 s on these machines); beyond it, e.g.
 * hundreds of Mistral adapters, the effective number of adapters stands in for it.
 */
export const UPDATE_NORM_BUDGET = 2e10;
/** Contributors beyond which the ratio is not computed, whatever their size. */
export const MAX_CONTRIBUTORS = 500;

/** The update norm ratio, or why it was not computed. */
export type UpdateNorm = { ratio: number; skipped?: undefined } | { ratio: null; skipped: string };

/**
 * SPEC §7 update norm ratio ‖Σ_j w_j ΔW_j‖_F / Σ_j w_j ‖ΔW_j‖_F over all modules, from the inner
 * products ⟨ΔW_j, ΔW_l⟩ of the contributors (r×r products, ΔW never formed). Not computed for
 * more than MAX_CONTRIBUTORS contributors, or when the pairs would cost more than `budget`
 * multiply-adds; `skipped` says which.
 */
export async function updateNormRatio(
  adapters: readonly Adapter[],
  weights: readonly number[],
  { budget = UPDATE_NORM_BUDGET, signal }: { budget?: number; signal?: AbortSignal } = {},
): Promise<UpdateNorm> {
  const used = adapters
    .map((adapter, j) => ({ adapter, weight: weights[j] as number }))
    .filter((u) => u.weight !== 0);
  if (used.length === 0) return { ratio: null, skipped: "no adapter has a weight" };
  const scales = used.map((u) => loraScaling(u.adapter.config));
  const modules = requireSameModules(used.map((u, k) => ({ ...u, scaling: scales[k] as number })));
  // Each pair also costs a call and its bookkeeping (~43 µs for tiny adapters): 2,070 of them took
  // 92 s, 500 take ~5 s, so the count is capped as well as the multiply-adds.
  if (used.length > MAX_CONTRIBUTORS)
    return { ratio: null, skipped: `${used.length} contributors, more than ${MAX_CONTRIBUTORS}` };
  const pairs = (used.length * (used.length + 1)) / 2;
  let cost = 0;
  for (const list of modules.values()) {
    const m = list[0];
    if (m) cost += pairs * m.r * m.r * (m.inFeatures + m.outFeatures);
  }
  if (cost > budget)
    return {
      ratio: null,
      skipped: `${used.length} contributors this large cost ${cost.toExponential(1)} multiply-adds`,
    };
  const inner = new Float64Array(used.length * used.length);
  const readers: SafetensorsReader[] = [];
  try {
    for (const { adapter } of used) readers.push(await SafetensorsReader.open(adapter.file));
    for (const list of modules.values()) {
      throwIfAborted(signal);
      const factors: ModuleFactors[] = [];
      for (const [k, mod] of list.entries()) {
        factors.push(await readModuleFactors(readers[k] as SafetensorsReader, mod, scales[k] as number));
      }
      for (let j = 0; j < used.length; j++) {
        // A synchronous module of many pairs would hold off Ctrl-C's handler.
        await yieldToEventLoop(signal);
        for (let l = j; l < used.length; l++) {
          const v = deltaInner(factors[j] as ModuleFactors, factors[l] as ModuleFactors);
          inner[j * used.length + l] = (inner[j * used.length + l] as number) + v;
          if (l !== j) inner[l * used.length + j] = (inner[l * used.length + j] as number) + v;
        }
      }
    }
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
  let mixed = 0;
  let separate = 0;
  for (const [j, a] of used.entries()) {
    separate += a.weight * Math.sqrt(inner[j * used.length + j] as number);
    for (const [l, b] of used.entries())
      mixed += a.weight * b.weight * (inner[j * used.length + l] as number);
  }
  return separate > 0
    ? { ratio: Math.sqrt(Math.max(mixed, 0)) / separate }
    : { ratio: null, skipped: "every contributor's update is zero" };
}
