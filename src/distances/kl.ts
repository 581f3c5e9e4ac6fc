import type { Profile } from "../profiles/profile.js";
import { binnedDensity } from "./binned.js";
import { EPSILON } from "./metric.js";

/**
 * Per-profile parts of KL(P‖Q) = Σ_k (a_k+ε) ln((a_k+ε)/(b_k+ε)) over the V−1 numpy bins (a, b: the
 * binned densities before ε). With L_X(k) = ln((x_k+ε)/ε), which is 0 off X's support, and
 * T_Q = Σ_{k∈supp Q} L_Q(k), splitting ln((a+ε)/(b+ε)) = L_P − L_Q and the Q-sum at supp P gives
 *   KL = Σ_{k∈supp P} (a_k+ε)(L_P(k) − L_Q(k)) − ε (T_Q − Σ_{k∈supp P} L_Q(k)),
 * exact (bins empty in both contribute ε·ln 1 = 0). A pair costs one pass over the target's support
 * with no logarithm, and P = Q gives exactly 0: each difference is 0 and the ε term subtracts the
 * same sum taken in the same order.
 */
export interface KlParts {
  bins: Uint32Array;
  /** a_k + ε on the support. */
  weight: Float64Array;
  /** L(k) on the support. */
  logRatio: Float64Array;
  /** Σ L over the support, in support order. */
  logSum: number;
}

export function klParts(p: Profile): KlParts {
  const { bins, density } = binnedDensity(p);
  const weight = new Float64Array(bins.length);
  const logRatio = new Float64Array(bins.length);
  let logSum = 0;
  for (let i = 0; i < bins.length; i++) {
    const a = density[i] as number;
    weight[i] = a + EPSILON;
    const l = Math.log1p(a / EPSILON);
    logRatio[i] = l;
    logSum += l;
  }
  return { bins, weight, logRatio, logSum };
}

/** Writes L_Q on all V−1 bins (0 off the support) into `out`. */
export function fillDenseLog(q: KlParts, out: Float64Array): Float64Array {
  out.fill(0);
  const { bins, logRatio } = q;
  for (let i = 0; i < bins.length; i++) out[bins[i] as number] = logRatio[i] as number;
  return out;
}

/** KL(P‖Q) from P's parts, Q's dense L (`fillDenseLog`) and Q's `logSum`. */
export function klFromParts(p: KlParts, denseLogQ: Float64Array, logSumQ: number): number {
  const { bins, weight, logRatio } = p;
  let main = 0;
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    const lq = denseLogQ[bins[i] as number] as number;
    main += (weight[i] as number) * ((logRatio[i] as number) - lq);
    seen += lq;
  }
  return main - EPSILON * (logSumQ - seen);
}

/** SPEC §3 KL(P‖Q), P the target: numpy-histogram densities with ε = 1e-10, natural log. */
export function klDivergence(p: Profile, q: Profile): number {
  const qp = klParts(q);
  return klFromParts(klParts(p), fillDenseLog(qp, new Float64Array(p.vocabSize - 1)), qp.logSum);
}
