import type { Profile } from "../profiles/profile.js";
import { type BinnedDensity, binnedDensity } from "./binned.js";
import { EPSILON } from "./metric.js";

/**
 * Per-profile parts of KL(P‖Q) = Σ_k (a_k+ε) ln((a_k+ε)/(b_k+ε)) over the V−1 bins (a, b: binned
 * densities). Bins empty in both contribute ε·ln 1 = 0, so with L_Q(k) = ln((b_k+ε)/ε), which is 0
 * off Q's support:  KL = S_P + T_Q − Σ_{k∈supp P} a_k L_Q(k),  where
 * S_P = Σ_{k∈supp P} (a_k+ε) ln((a_k+ε)/ε) and T_Q = −ε Σ_{k∈supp Q} L_Q(k).
 * A pair then costs one pass over the target's support instead of V logarithms.
 */
export interface KlParts {
  binned: BinnedDensity;
  selfTerm: number;
  otherTerm: number;
  /** L(k) on the support, aligned with binned.bins. */
  logRatio: Float64Array;
}

export function klParts(p: Profile): KlParts {
  const binned = binnedDensity(p);
  const logRatio = new Float64Array(binned.bins.length);
  let selfTerm = 0;
  let otherTerm = 0;
  for (let i = 0; i < logRatio.length; i++) {
    const a = binned.density[i]!;
    const l = Math.log((a + EPSILON) / EPSILON);
    logRatio[i] = l;
    selfTerm += (a + EPSILON) * l;
    otherTerm -= EPSILON * l;
  }
  return { binned, selfTerm, otherTerm, logRatio };
}

/** KL from precomputed parts; `denseLogQ` holds L_Q on all V−1 bins (0 off the support). */
export function klFromParts(p: KlParts, q: KlParts, denseLogQ: Float64Array): number {
  let cross = 0;
  const { bins, density } = p.binned;
  for (let i = 0; i < bins.length; i++) cross += density[i]! * denseLogQ[bins[i]!]!;
  return p.selfTerm + q.otherTerm - cross;
}

export function fillDenseLog(q: KlParts, out: Float64Array): Float64Array {
  out.fill(0);
  const { bins } = q.binned;
  for (let i = 0; i < bins.length; i++) out[bins[i]!] = q.logRatio[i]!;
  return out;
}

/** SPEC §3 KL(P‖Q), P the target: numpy-histogram densities with ε = 1e-10, natural log. */
export function klDivergence(p: Profile, q: Profile): number {
  const qp = klParts(q);
  return klFromParts(klParts(p), qp, fillDenseLog(qp, new Float64Array(p.vocabSize - 1)));
}
