import { LoramixError, throwIfAborted } from "../errors.js";
import { type LoraModule, loraScaling } from "../formats/peft.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import type { ProgressSink } from "../util/progress.js";
import { type LowRankTerm, truncateLowRankSum } from "./deltaSvd.js";
import type { WeightedAdapter } from "./sources.js";
import type { TensorSink } from "./write.js";

export type LowRankMode = "delta-svd" | "cat";

/** Output rank and config changes of a low-rank mix, decided before any tensor is written. */
export interface LowRankPlan {
  /** Rank of every output module. */
  rank: number;
  /** Keys overriding the first adapter's adapter_config.json. */
  configPatch: Record<string, unknown>;
  /** LoRA scaling of the output adapter. */
  scaling: number;
}

/**
 * delta-svd keeps the first adapter's r and alpha. cat stacks all ranks, r' = Σ r_j, and sets
 * lora_alpha = r' with rslora off, so the output scaling is exactly 1 and the weights w_j s_j go
 * into the factors.
 */
export function planLowRank(
  mode: LowRankMode,
  sources: WeightedAdapter[],
  modules: Map<string, LoraModule[]>,
): LowRankPlan {
  const first = (sources[0] as WeightedAdapter).adapter;
  if (mode === "delta-svd") {
    return { rank: first.config.r, configPatch: {}, scaling: loraScaling(first.config) };
  }
  const ranks = new Set([...modules.values()].map((list) => list.reduce((n, m) => n + m.r, 0)));
  const rank = [...ranks][0] as number;
  if (ranks.size > 1) {
    throw new LoramixError(
      "LAYOUT",
      `cat: the stacked rank differs between modules (${[...ranks].join(", ")})`,
    );
  }
  return { rank, configPatch: { r: rank, lora_alpha: rank, use_rslora: false }, scaling: 1 };
}

/** Output tensors in write order: per module (first adapter's order), A [rank, in] then B [out, rank]. */
export function lowRankTensors(
  sources: WeightedAdapter[],
  rank: number,
): { name: string; shape: number[] }[] {
  const first = (sources[0] as WeightedAdapter).adapter;
  return first.modules.flatMap((m) => [
    { name: m.a, shape: [rank, m.inFeatures] },
    { name: m.b, shape: [m.outFeatures, rank] },
  ]);
}

/**
 * delta-svd: ΔŴ = Σ_j w_j s_j B_j A_j per module, truncated back to the output rank (best
 * Frobenius approximation). cat: A' = vstack(√|c_j| A_j), B' = hstack(sign(c_j)·√|c_j| B_j) with
 * c_j = w_j s_j / s_out, so s_out·B'A' = ΔŴ exactly; the square-root split keeps A' and B' at
 * comparable magnitudes. Module by module: memory is one module of every source adapter.
 */
export async function mixLowRank({
  mode,
  sources,
  modules,
  plan,
  sink,
  signal,
  progress,
}: {
  mode: LowRankMode;
  sources: WeightedAdapter[];
  modules: Map<string, LoraModule[]>;
  plan: LowRankPlan;
  sink: TensorSink;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<{ bytesRead: number }> {
  const first = (sources[0] as WeightedAdapter).adapter;
  const readers: SafetensorsReader[] = [];
  let bytesRead = 0;
  try {
    for (const { adapter } of sources) readers.push(await SafetensorsReader.open(adapter.file));
    for (const [index, ref] of first.modules.entries()) {
      throwIfAborted(signal);
      const list = modules.get(ref.module) as LoraModule[];
      const terms: LowRankTerm[] = [];
      for (const [j, m] of list.entries()) {
        const reader = readers[j] as SafetensorsReader;
        const source = sources[j] as WeightedAdapter;
        const a = await reader.readF32(m.a);
        const b = await reader.readF32(m.b);
        bytesRead += tensorBytes(reader, m.a) + tensorBytes(reader, m.b);
        terms.push({ a, b, r: m.r, coeff: source.weight * source.scaling });
      }
      const { a, b } =
        mode === "delta-svd"
          ? truncateLowRankSum({
              terms,
              outFeatures: ref.outFeatures,
              inFeatures: ref.inFeatures,
              rank: plan.rank,
              scale: plan.scaling,
            })
          : stackTerms(terms, ref.outFeatures, ref.inFeatures, plan.rank, plan.scaling);
      throwIfAborted(signal);
      await sink.append(a, ref.a);
      await sink.append(b, ref.b);
      progress?.({ phase: `mix ${mode}`, done: index + 1, total: first.modules.length, unit: "modules" });
    }
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
  return { bytesRead };
}

function tensorBytes(reader: SafetensorsReader, name: string): number {
  const info = reader.header.tensors.get(name);
  return info ? info.end - info.begin : 0;
}

/** The exact cat factors of Σ_j c_j B_j A_j for output scaling `scale`. */
export function stackTerms(
  terms: LowRankTerm[],
  out: number,
  inF: number,
  rank: number,
  scale: number,
): { a: Float32Array; b: Float32Array } {
  const a = new Float32Array(rank * inF);
  const b = new Float32Array(out * rank);
  let offset = 0;
  for (const t of terms) {
    const c = t.coeff / scale;
    const fa = Math.sqrt(Math.abs(c));
    const fb = c < 0 ? -fa : fa;
    for (let i = 0; i < t.r * inF; i++) a[offset * inF + i] = fa * (t.a[i] as number);
    for (let i = 0; i < out; i++) {
      for (let k = 0; k < t.r; k++) b[i * rank + offset + k] = fb * (t.b[i * t.r + k] as number);
    }
    offset += t.r;
  }
  return { a, b };
}
