import { usageError } from "../errors.js";
import { softmin } from "./softmin.js";

/**
 * Reconstruction loss of mixtures through the Gram matrix G = ΘΘᵀ (SPEC §4): for target i with
 * weights w over candidates C, ‖Σ_j w_j θ_j − θ_i‖² = wᵀ G_CC w − 2 wᵀ G_{C,i} + G_ii, so the N×p
 * parameter matrix is never formed. The loss is the mean squared error over all parameters and
 * target rows: Σ_rows ‖·‖² / (rows · params).
 *
 * `logits` (rows × candidates, row-major) are the values fed to softmin (weights = softmin(logits)),
 * with a row's own entry, when it is a candidate, excluded. With `gradient`, also returns dL/dlogits.
 */
export function gramMixtureLoss({
  gram,
  n,
  params,
  rows,
  candidates,
  logits,
  gradient = false,
}: {
  gram: Float64Array;
  n: number;
  params: number;
  rows: readonly number[];
  candidates: readonly number[];
  logits: Float64Array;
  gradient?: boolean;
}): { loss: number; gradient?: Float64Array; weights: Float64Array } {
  const c = candidates.length;
  if (gram.length !== n * n) throw usageError(`Gram matrix has ${gram.length} values, expected ${n}×${n}`);
  if (logits.length !== rows.length * c) {
    throw usageError(`logits have ${logits.length} values, expected ${rows.length}×${c}`);
  }
  const weights = new Float64Array(rows.length * c);
  const grad = gradient ? new Float64Array(rows.length * c) : undefined;
  const gw = new Float64Array(c);
  const scale = 1 / (rows.length * params);
  let total = 0;
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r] as number;
    const w = weights.subarray(r * c, (r + 1) * c);
    softmin(logits.subarray(r * c, (r + 1) * c), { exclude: (k) => candidates[k] === i, out: w });
    let quad = 0;
    let cross = 0;
    for (let a = 0; a < c; a++) {
      const ga = (candidates[a] as number) * n;
      let s = 0;
      for (let b = 0; b < c; b++) s += (gram[ga + (candidates[b] as number)] as number) * (w[b] as number);
      gw[a] = s;
      quad += (w[a] as number) * s;
      cross += (w[a] as number) * (gram[ga + i] as number);
    }
    total += quad - 2 * cross + (gram[i * n + i] as number);
    if (grad) {
      // dL/dw_a = 2(G w − G_{:,i})_a · scale; softmin's Jacobian turns it into
      // dL/dlogit_a = −w_a (dL/dw_a − Σ_b w_b dL/dw_b).
      let mean = 0;
      for (let a = 0; a < c; a++) {
        const ga = 2 * ((gw[a] as number) - (gram[(candidates[a] as number) * n + i] as number)) * scale;
        gw[a] = ga;
        mean += (w[a] as number) * ga;
      }
      for (let a = 0; a < c; a++) grad[r * c + a] = -(w[a] as number) * ((gw[a] as number) - mean);
    }
  }
  return { loss: total * scale, gradient: grad, weights };
}
