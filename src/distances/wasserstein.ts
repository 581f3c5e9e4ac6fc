import type { Profile } from "../profiles/profile.js";

/** A profile's CDF at its support ids: F(ids[t]) = (c_0 + … + c_t) / n, the last one exactly 1. */
export interface CdfParts {
  ids: Uint32Array;
  cdf: Float64Array;
}

export function cdfParts(p: Profile): CdfParts {
  const cdf = new Float64Array(p.ids.length);
  // Integer counts summed exactly, then one division each: no drift from adding rounded fractions.
  let running = 0;
  for (let i = 0; i < cdf.length; i++) {
    running += p.counts[i] as number;
    cdf[i] = running / p.nTokens;
  }
  return { ids: p.ids, cdf };
}

/**
 * Σ_k |F_P(k) − F_Q(k)| over all ids. Both CDFs are step functions that change only at support ids,
 * so a merge walk over the two supports adds |F_P − F_Q| × (gap to the next change). Past both
 * supports both CDFs are 1, so the sum equals SPEC's Σ_{k=0}^{V−2}.
 */
export function wassersteinFromParts(p: CdfParts, q: CdfParts): number {
  const pi = p.ids;
  const qi = q.ids;
  const pc = p.cdf;
  const qc = q.cdf;
  const np = pi.length;
  const nq = qi.length;
  let i = 0;
  let j = 0;
  let fp = 0;
  let fq = 0;
  let x = 0;
  let total = 0;
  while (i < np && j < nq) {
    const a = pi[i] as number;
    const b = qi[j] as number;
    if (a < b) {
      total += Math.abs(fp - fq) * (a - x);
      x = a;
      fp = pc[i++] as number;
    } else if (b < a) {
      total += Math.abs(fp - fq) * (b - x);
      x = b;
      fq = qc[j++] as number;
    } else {
      total += Math.abs(fp - fq) * (a - x);
      x = a;
      fp = pc[i++] as number;
      fq = qc[j++] as number;
    }
  }
  // One support is exhausted, so its CDF is 1 from here on.
  for (; i < np; i++) {
    const a = pi[i] as number;
    total += Math.abs(fp - fq) * (a - x);
    x = a;
    fp = pc[i] as number;
  }
  for (; j < nq; j++) {
    const b = qi[j] as number;
    total += Math.abs(fp - fq) * (b - x);
    x = b;
    fq = qc[j] as number;
  }
  return total;
}

/**
 * SPEC §3 1-Wasserstein distance between the token ids as numbers: Σ_{k=0}^{V−2} |F_P(k) − F_Q(k)|,
 * which is what scipy's wasserstein_distance gives on the raw id arrays, from the histograms.
 */
export function wassersteinOnIds(p: Profile, q: Profile): number {
  return wassersteinFromParts(cdfParts(p), cdfParts(q));
}
