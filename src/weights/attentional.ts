import { checkTemperature, excluder, softmin } from "./softmin.js";

export interface WeightOptions {
  /** Softmin temperature τ: weights are softmin(x/τ). */
  temperature?: number;
  /** Index of the target itself in the row (leave-one-out over a bank): weight 0. */
  selfIndex?: number;
  /** mask[j] true: candidate j is excluded (weight 0) and, for z-scores, left out of the statistics. */
  mask?: ArrayLike<boolean>;
}

/** SPEC §4 attentional: w = softmin(δ/τ) on the raw distances, over the candidates j ≠ target. */
export function attentionalWeights(
  distances: ArrayLike<number>,
  { temperature = 1, selfIndex, mask }: WeightOptions = {},
): Float64Array {
  checkTemperature(temperature);
  const scaled = new Float64Array(distances.length);
  for (let j = 0; j < distances.length; j++) scaled[j] = (distances[j] as number) / temperature;
  return softmin(scaled, { exclude: excluder(distances.length, selfIndex, mask), out: scaled });
}
