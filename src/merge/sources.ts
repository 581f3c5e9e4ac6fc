import { existsSync } from "node:fs";
import { join } from "node:path";
import { LoramixError, usageError } from "../errors.js";
import { type Adapter, compareLayouts, type LoraModule, loadAdapter, loraScaling } from "../formats/peft.js";

/**
 * Synthetic adapters (loramix synth-bank) carry this sidecar instead of an extra key in
 * adapter_config.json, because PEFT versions before 0.13 refuse unknown config keys.
 */
export const SYNTHETIC_MARKER = "loramix-synthetic.json";

export function isSyntheticAdapter(dir: string): boolean {
  return existsSync(join(dir, SYNTHETIC_MARKER));
}

/** An adapter with its mixing weight and LoRA scaling, after zero weights were dropped. */
export interface WeightedAdapter {
  adapter: Adapter;
  weight: number;
  scaling: number;
}

/** Loads the adapters given by path, checks the weights, and drops adapters whose weight is 0. */
export async function weightedSources(
  adapters: (Adapter | string)[],
  weights: number[],
): Promise<WeightedAdapter[]> {
  if (adapters.length !== weights.length) {
    throw usageError(`${adapters.length} adapters but ${weights.length} weights`);
  }
  if (adapters.length === 0) throw usageError("no adapters to mix");
  const sources: WeightedAdapter[] = [];
  for (const [i, item] of adapters.entries()) {
    const weight = weights[i] as number;
    if (!Number.isFinite(weight)) throw usageError(`weight ${i} is ${weight}, not a finite number`);
    if (weight === 0) continue;
    const adapter = typeof item === "string" ? await loadAdapter(item) : item;
    sources.push({ adapter, weight, scaling: loraScaling(adapter.config) });
  }
  if (sources.length === 0) throw usageError("every mixing weight is 0");
  return sources;
}

/** linear averages tensors name by name, so every adapter must have exactly the first one's layout. */
export function requireSameLayout(sources: WeightedAdapter[]): void {
  const first = (sources[0] as WeightedAdapter).adapter;
  for (const { adapter } of sources.slice(1)) {
    const diffs = compareLayouts(first.layout, adapter.layout);
    if (diffs.length > 0) {
      throw new LoramixError(
        "LAYOUT",
        `${adapter.dir}: layout differs from ${first.dir}: ${diffs.join("; ")}`,
      );
    }
  }
}

/**
 * delta-svd and cat combine products B·A, so ranks and alphas may differ between adapters, but
 * the modules and their shapes must match, and per-module rank/alpha patterns (which would give
 * a module its own scaling) are refused rather than silently mis-scaled.
 */
export function requireSameModules(sources: WeightedAdapter[]): Map<string, LoraModule[]> {
  const first = (sources[0] as WeightedAdapter).adapter;
  const byModule = new Map<string, LoraModule[]>(first.modules.map((m) => [m.module, []]));
  for (const { adapter } of sources) {
    for (const key of ["rank_pattern", "alpha_pattern"]) {
      const pattern = adapter.config.raw[key];
      if (pattern && typeof pattern === "object" && Object.keys(pattern).length > 0) {
        throw new LoramixError("LAYOUT", `${adapter.dir}: ${key} is not supported by delta-svd and cat`);
      }
    }
    if (adapter.modules.length !== first.modules.length) {
      throw new LoramixError(
        "LAYOUT",
        `${adapter.dir}: ${adapter.modules.length} LoRA modules, ${first.dir} has ${first.modules.length}`,
      );
    }
    for (const m of adapter.modules) {
      const list = byModule.get(m.module);
      const ref = first.modules.find((x) => x.module === m.module);
      if (!list || !ref)
        throw new LoramixError("LAYOUT", `${adapter.dir}: module ${m.module} is not in ${first.dir}`);
      if (m.inFeatures !== ref.inFeatures || m.outFeatures !== ref.outFeatures) {
        throw new LoramixError(
          "LAYOUT",
          `${adapter.dir}: module ${m.module} is ${m.outFeatures}×${m.inFeatures}, ${first.dir} has ${ref.outFeatures}×${ref.inFeatures}`,
        );
      }
      list.push(m);
    }
  }
  return byModule;
}
