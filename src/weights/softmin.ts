import { usageError } from "../errors.js";

/**
 * softmin(x)_j = exp(−x_j) / Σ_l exp(−x_l) over the candidates j not excluded (SPEC §4); excluded
 * entries get weight 0. Shifted by the smallest candidate so the largest term is exp(0) = 1: no
 * overflow for large negative inputs, no 0/0 for large positive ones.
 */
export function softmin(
  x: ArrayLike<number>,
  {
    exclude,
    out = new Float64Array(x.length),
  }: { exclude?: (j: number) => boolean; out?: Float64Array } = {},
): Float64Array {
  let min = Number.POSITIVE_INFINITY;
  let candidates = 0;
  for (let j = 0; j < x.length; j++) {
    if (exclude?.(j)) continue;
    const v = x[j] as number;
    if (Number.isNaN(v)) throw usageError(`softmin: value ${j} is NaN`);
    candidates++;
    if (v < min) min = v;
  }
  if (candidates === 0) throw usageError("softmin: no candidate left to weight");
  let sum = 0;
  for (let j = 0; j < x.length; j++) {
    // All candidates at +Infinity carry no preference: exp(−(∞ − ∞)) is NaN, treat them as equal.
    const e = exclude?.(j) ? 0 : min === Number.POSITIVE_INFINITY ? 1 : Math.exp(min - (x[j] as number));
    out[j] = e;
    sum += e;
  }
  for (let j = 0; j < x.length; j++) out[j] = (out[j] as number) / sum;
  return out;
}

/** Validates a softmin temperature τ (weights are softmin(x/τ)). */
export function checkTemperature(temperature: number): void {
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw usageError(`temperature must be a positive finite number, got ${temperature}`);
  }
}

/** Candidate filter shared by the weightings: the self entry and any entry in `mask` are excluded. */
export function excluder(
  n: number,
  selfIndex: number | undefined,
  mask: ArrayLike<boolean> | undefined,
): ((j: number) => boolean) | undefined {
  if (selfIndex !== undefined && !(Number.isInteger(selfIndex) && selfIndex >= 0 && selfIndex < n)) {
    throw usageError(`selfIndex ${selfIndex} is outside the row of ${n} distances`);
  }
  if (mask !== undefined && mask.length !== n) {
    throw usageError(`mask has ${mask.length} entries for a row of ${n} distances`);
  }
  if (selfIndex === undefined && mask === undefined) return undefined;
  return (j) => j === selfIndex || mask?.[j] === true;
}
