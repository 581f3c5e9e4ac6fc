/** The four leave-one-out numbers (SPEC §6): prediction against the entry's real adapter. */
export interface LooScores {
  /** Cosine of the flattened parameters; null when the shapes differ (cat output: rank Σ r). */
  paramCosine: number | null;
  /** ‖θ̂ − θ_i‖ / ‖θ_i‖ over the flattened parameters; null when the shapes differ. */
  paramRelL2: number | null;
  /** Cosine of the concatenated ΔW of all modules. */
  deltaCosine: number;
  /** ‖ΔŴ − ΔW_i‖_F / ‖ΔW_i‖_F. */
  deltaRelL2: number;
}

export const LOO_NUMBERS = ["paramCosine", "paramRelL2", "deltaCosine", "deltaRelL2"] as const;
export type LooNumber = (typeof LOO_NUMBERS)[number];

/**
 * Parameter-space cosine and relative L2 error of the linear mix θ̂ = Σ_j w_j θ_j against θ_i,
 * exactly from the Gram matrix G = ΘΘᵀ (n×n, row-major): ⟨θ̂, θ_i⟩ = wᵀG_{:,i}, ‖θ̂‖² = wᵀGw and
 * ‖θ̂ − θ_i‖² = wᵀGw − 2wᵀG_{:,i} + G_ii. No adapter is read.
 */
export function gramScores(
  gram: Float64Array,
  n: number,
  weights: ArrayLike<number>,
  target: number,
): { cosine: number; relL2: number } {
  if (gram.length !== n * n || weights.length !== n) {
    throw new RangeError(`gramScores: ${gram.length} Gram values and ${weights.length} weights for n = ${n}`);
  }
  const nz: number[] = [];
  for (let j = 0; j < n; j++) if ((weights[j] as number) !== 0) nz.push(j);
  let wGw = 0;
  let wg = 0;
  for (const j of nz) {
    const wj = weights[j] as number;
    let row = 0;
    for (const l of nz) row += (weights[l] as number) * (gram[j * n + l] as number);
    wGw += wj * row;
    wg += wj * (gram[j * n + target] as number);
  }
  const gii = gram[target * n + target] as number;
  const cosine = wGw > 0 && gii > 0 ? wg / Math.sqrt(wGw * gii) : 0;
  // The three terms nearly cancel for a close prediction; rounding can leave a tiny negative.
  const relL2 = Math.sqrt(Math.max(0, wGw - 2 * wg + gii) / gii);
  return { cosine, relL2 };
}
