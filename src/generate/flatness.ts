import type { UpdateNorm } from "../merge/updateNorm.js";

/** How spread a mixture's weights are. */
export interface Flatness {
  /** 1 / Σ w²: 1 for a single adapter, N for N equal weights. */
  effective: number;
  maxWeight: number;
  /** SPEC §7 ‖Σ w_j ΔW_j‖ / Σ w_j ‖ΔW_j‖; null when not computed, and `updateNormSkipped` says why. */
  updateNorm: number | null;
  updateNormSkipped: string | null;
  /** One line for the user when the mixture is likely to behave like the base model; else null. */
  warning: string | null;
}

/**
 * Without the update norm ratio, above this many effective adapters a mixture is flagged: for
 * updates that point in unrelated directions the mixed update is about 1/√N_eff of their size
 * (SPEC §7), i.e. half at N_eff = 4.
 */
export const FLAT_EFFECTIVE = 4;

/** Below this update norm ratio the mix keeps less than half of its contributors' size. */
export const FLAT_UPDATE_NORM = 0.5;

export function flatness(
  weights: ArrayLike<number>,
  norm: UpdateNorm = { ratio: null, skipped: "not asked for" },
): Flatness {
  let squares = 0;
  let maxWeight = 0;
  for (let j = 0; j < weights.length; j++) {
    const w = weights[j] as number;
    squares += w * w;
    if (w > maxWeight) maxWeight = w;
  }
  const effective = squares > 0 ? 1 / squares : 0;
  const updateNorm = norm.ratio;
  const size =
    updateNorm === null
      ? `~${(100 / Math.sqrt(effective)).toFixed(0)}% of its contributors' size (1/√N_eff)`
      : `${(100 * updateNorm).toFixed(0)}% of its contributors' size (update norm ratio)`;
  const flat = updateNorm === null ? effective > FLAT_EFFECTIVE : updateNorm < FLAT_UPDATE_NORM;
  const warning = flat
    ? `the weights are flat (${effective.toFixed(1)} effective adapters, largest ${maxWeight.toFixed(3)}): the mixed update is ${size} and likely to behave like the base model; try --select fit, --top-k or a lower --temperature`
    : null;
  return { effective, maxWeight, updateNorm, updateNormSkipped: norm.skipped ?? null, warning };
}
