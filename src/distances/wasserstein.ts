import type { Profile } from "../profiles/profile.js";

/**
 * SPEC §3 1-Wasserstein distance between the token ids as numbers: Σ_{k=0}^{V−2} |F_P(k) − F_Q(k)|,
 * which is what scipy's wasserstein_distance gives on the raw id arrays. Both CDFs are step
 * functions that change only at support ids, so a merge walk over the two supports sums
 * |F_P − F_Q| × (gap to the next change) without touching all V ids.
 */
export function wassersteinOnIds(p: Profile, q: Profile): number {
  const pi = p.ids;
  const qi = q.ids;
  let i = 0;
  let j = 0;
  let fp = 0;
  let fq = 0;
  let total = 0;
  let x = 0;
  while (i < pi.length || j < qi.length) {
    const next = Math.min(i < pi.length ? pi[i]! : Infinity, j < qi.length ? qi[j]! : Infinity);
    total += Math.abs(fp - fq) * (next - x);
    x = next;
    while (i < pi.length && pi[i] === next) fp += p.counts[i++]! / p.nTokens;
    while (j < qi.length && qi[j] === next) fq += q.counts[j++]! / q.nTokens;
  }
  return total;
}
