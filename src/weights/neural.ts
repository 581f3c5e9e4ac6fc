import { mlpForward, type ScalarMlp } from "./mlp.js";
import { zScoreRow } from "./normalized.js";
import { excluder, softmin } from "./softmin.js";

/**
 * SPEC §4 neural: z-score the row as `normalizedWeights` does (self included in the statistics),
 * apply the trained per-scalar MLP f to each z-score, then softmin over the candidates.
 */
export function neuralWeights(
  distances: ArrayLike<number>,
  mlp: ScalarMlp,
  { selfIndex, mask }: { selfIndex?: number; mask?: ArrayLike<boolean> } = {},
): Float64Array {
  const exclude = excluder(distances.length, selfIndex, mask);
  const { z } = zScoreRow(distances, { mask });
  const y = new Float64Array(z.length).fill(Number.POSITIVE_INFINITY);
  const keep: number[] = [];
  for (let j = 0; j < z.length; j++) if (!exclude?.(j)) keep.push(j);
  const fy = mlpForward(
    mlp,
    keep.map((j) => z[j] as number),
  );
  keep.forEach((j, k) => {
    y[j] = fy[k] as number;
  });
  return softmin(y, { exclude, out: y });
}
