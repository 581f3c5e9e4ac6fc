import { usageError } from "../errors.js";
import { normalizedWeights } from "../weights/normalized.js";

/** One adapter that selection may pick: a single bank adapter or a mixture of them. */
export interface Candidate {
  /** "nearest 1: task…" or "normalized τ=0.3": what a user reads in loramix.json and the table. */
  label: string;
  kind: "single" | "mixture";
  /** Weights over the bank's adapters (sum 1). */
  weights: Float64Array;
}

/**
 * Softmin temperatures of the mixture candidates: the paper's τ = 1 and two sharper ones, since
 * flat mixtures shrink the update towards the base model (issue 10); the single adapters are
 * the τ → 0 end.
 */
export const MIXTURE_TEMPERATURES = [1, 0.3, 0.1] as const;

/** Nearest single adapters in the candidate set by default (chosen on the bank, see testbed/TRAINING.md). */
export const DEFAULT_NEAREST = 8;

/** A mixture whose largest weight is above this is the nearest adapter again: not worth a scoring. */
const ONE_HOT = 0.999;

/**
 * The candidate set of `--select loss`: the `nearest` adapters closest by `distances` (ties by
 * bank order), then the normalized mixtures (SPEC §4) at each temperature. `mask[j]` true keeps
 * adapter j out (the demo's own adapter of the target).
 */
export function lossCandidates(
  distances: Float64Array,
  ids: readonly string[],
  {
    nearest = DEFAULT_NEAREST,
    temperatures = MIXTURE_TEMPERATURES,
    mask,
  }: { nearest?: number; temperatures?: readonly number[]; mask?: ArrayLike<boolean> } = {},
): Candidate[] {
  const n = distances.length;
  if (ids.length !== n) throw usageError(`${ids.length} ids for ${n} distances`);
  if (!(Number.isInteger(nearest) && nearest >= 1))
    throw usageError(`candidates must be a positive integer, got ${nearest}`);
  const open = Array.from({ length: n }, (_, j) => j).filter((j) => !mask?.[j]);
  if (open.length === 0) throw usageError("no adapter to select from");
  open.sort((a, b) => (distances[a] as number) - (distances[b] as number) || a - b);
  const out: Candidate[] = open.slice(0, nearest).map((j, rank) => {
    const weights = new Float64Array(n);
    weights[j] = 1;
    return { label: `nearest ${rank + 1}: ${ids[j]}`, kind: "single", weights };
  });
  for (const temperature of temperatures) {
    const weights = normalizedWeights(distances, { temperature, mask });
    if (Math.max(...weights) > ONE_HOT) continue;
    out.push({ label: `normalized τ=${temperature}`, kind: "mixture", weights });
  }
  return out;
}
