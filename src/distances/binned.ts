import type { Profile } from "../profiles/profile.js";

/**
 * The sparse numpy-histogram densities of SPEC §3, before ε: V−1 unit bins, the last one closed,
 * so ids V−2 and V−1 share bin V−2. `bins` ascending, `density` = count / n.
 */
export interface BinnedDensity {
  bins: Uint32Array;
  density: Float64Array;
}

export function binnedDensity(p: Profile): BinnedDensity {
  const last = p.vocabSize - 2;
  const n = p.ids.length;
  const merge = n >= 2 && p.ids[n - 1] === last + 1 && p.ids[n - 2] === last;
  const size = merge ? n - 1 : n;
  const bins = new Uint32Array(size);
  const density = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    bins[i] = Math.min(p.ids[i]!, last);
    density[i] = p.counts[i]! / p.nTokens;
  }
  if (merge) density[size - 1] = (p.counts[n - 2]! + p.counts[n - 1]!) / p.nTokens;
  return { bins, density };
}
