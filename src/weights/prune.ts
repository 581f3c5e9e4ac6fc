import { usageError } from "../errors.js";

/** `--top-k` and `--min-weight`: the K largest weights, then those of at least `minWeight`. */
export interface PruneOptions {
  topK?: number;
  minWeight?: number;
}

/** Refuses a top-k that is not a positive integer and a min-weight outside [0, 1]. */
export function checkPruneOptions({ topK, minWeight }: PruneOptions): void {
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) {
    throw usageError(`top-k must be a positive integer, got ${topK}`);
  }
  if (minWeight !== undefined && !(minWeight >= 0 && minWeight <= 1)) {
    throw usageError(`min-weight must be between 0 and 1, got ${minWeight}`);
  }
}

/**
 * Post-processing of mixture weights (SPEC §5 `--top-k`, `--min-weight`): keep the K largest, then
 * drop those below `minWeight`, and renormalise the survivors to sum 1. Ties at the K-th place are
 * broken by position: among equal weights the lower index is kept, so results do not depend on sort
 * stability. Weights already 0 (self, masked) are never kept. Throws when nothing survives.
 */
export function pruneWeights(
  weights: ArrayLike<number>,
  { topK, minWeight }: PruneOptions = {},
): Float64Array {
  const n = weights.length;
  checkPruneOptions({ topK, minWeight });
  const keep = new Uint8Array(n);
  for (let j = 0; j < n; j++) if ((weights[j] as number) > 0) keep[j] = 1;
  if (topK !== undefined) {
    const order = Array.from({ length: n }, (_, j) => j).filter((j) => keep[j] === 1);
    order.sort((a, b) => (weights[b] as number) - (weights[a] as number) || a - b);
    for (const j of order.slice(topK)) keep[j] = 0;
  }
  if (minWeight !== undefined) {
    for (let j = 0; j < n; j++) if ((weights[j] as number) < minWeight) keep[j] = 0;
  }
  let sum = 0;
  for (let j = 0; j < n; j++) if (keep[j] === 1) sum += weights[j] as number;
  if (sum === 0) {
    let max = 0;
    for (let j = 0; j < n; j++) max = Math.max(max, weights[j] as number);
    throw usageError(`min-weight ${minWeight} removes every candidate (largest weight ${max})`);
  }
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) if (keep[j] === 1) out[j] = (weights[j] as number) / sum;
  return out;
}
