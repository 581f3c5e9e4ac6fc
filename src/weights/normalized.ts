import { usageError } from "../errors.js";
import type { WeightOptions } from "./attentional.js";
import { checkTemperature, excluder, softmin } from "./softmin.js";

/** How rows are z-scored; stored with trained MLPs so that inference repeats it. */
export const Z_SCORE_CONVENTION =
  "row mean and population std (ddof 0) over all unmasked entries of the row, the self entry included; zero std gives z = 0";

/**
 * Z-scores a distance row with the paper-compatible statistics (SPEC §4): mean and population
 * standard deviation (ddof 0) over every entry not in `mask`, the self entry INCLUDED (a bank entry
 * evaluated leave-one-out); for a new dataset there is no self entry and the statistics are over its
 * N distances. A zero std gives z = 0 everywhere, hence uniform weights after softmin.
 * Masked entries get z = NaN so that a stray use shows.
 */
export function zScoreRow(
  distances: ArrayLike<number>,
  { mask }: { mask?: ArrayLike<boolean> } = {},
): { z: Float64Array; mean: number; std: number } {
  const n = distances.length;
  if (mask !== undefined && mask.length !== n) {
    throw usageError(`mask has ${mask.length} entries for a row of ${n} distances`);
  }
  let count = 0;
  let sum = 0;
  for (let j = 0; j < n; j++) {
    if (mask?.[j] === true) continue;
    const d = distances[j] as number;
    if (!Number.isFinite(d)) throw usageError(`distance ${j} is ${d}; z-scores need finite distances`);
    sum += d;
    count++;
  }
  if (count === 0) throw usageError("z-score: every entry of the row is masked");
  const mean = sum / count;
  // Two passes: Σ(d − mean)² does not cancel catastrophically the way Σd² − n·mean² does.
  let ss = 0;
  for (let j = 0; j < n; j++) {
    if (mask?.[j] === true) continue;
    const e = (distances[j] as number) - mean;
    ss += e * e;
  }
  const std = Math.sqrt(ss / count);
  const z = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    z[j] = mask?.[j] === true ? Number.NaN : std === 0 ? 0 : ((distances[j] as number) - mean) / std;
  }
  return { z, mean, std };
}

/**
 * SPEC §4 normalized: z-score the row (statistics include the self entry), then softmin(z/τ) over
 * the candidates; the self entry and masked entries get weight 0.
 */
export function normalizedWeights(
  distances: ArrayLike<number>,
  { temperature = 1, selfIndex, mask }: WeightOptions = {},
): Float64Array {
  checkTemperature(temperature);
  const exclude = excluder(distances.length, selfIndex, mask);
  const { z } = zScoreRow(distances, { mask });
  for (let j = 0; j < z.length; j++) if (!exclude?.(j)) z[j] = (z[j] as number) / temperature;
  return softmin(z, { exclude, out: z });
}
