import { usageError } from "../errors.js";
import { methodWeights, type WeightMethod } from "./methods.js";
import type { ScalarMlp } from "./mlp.js";

/**
 * Leave-one-out weights over a bank: `distances` is the N×N pairwise matrix (row = target, column =
 * candidate, row-major); row i of the result weights the other entries for target i, its own
 * entry masked (weight 0). `mask[j]` true removes candidate j from every row (e.g. entries without
 * an adapter); a masked entry can still be a target.
 */
export function leaveOneOutWeights(
  distances: Float64Array,
  n: number,
  {
    method,
    temperature = 1,
    mlp,
    mask,
  }: { method: WeightMethod; temperature?: number; mlp?: ScalarMlp; mask?: ArrayLike<boolean> },
): Float64Array {
  if (distances.length !== n * n)
    throw usageError(`distance matrix has ${distances.length} values, expected ${n}×${n}`);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = distances.subarray(i * n, (i + 1) * n);
    // The target's own entry stays in the row even when masked as a candidate: it is the self entry
    // that the paper-compatible statistics include.
    const rowMask = mask && Array.from({ length: n }, (_, j) => j !== i && mask[j] === true);
    const w = methodWeights(method, row, { temperature, mlp, selfIndex: i, mask: rowMask });
    out.set(w, i * n);
  }
  return out;
}
