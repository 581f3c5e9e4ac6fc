import type { Profile } from "../profiles/profile.js";
import { type BinnedDensity, binnedDensity } from "./binned.js";
import { EPSILON } from "./metric.js";

/**
 * JS = ½ Σ p ln(p/m) + ½ Σ q ln(q/m), p = a+ε, q = b+ε, m = (p+q)/2 over the V−1 bins. Bins empty
 * in both give 0. For a bin only in P the term is g(a) = ½(a+ε) ln(2(a+ε)/(a+2ε)) + ½ε ln(2ε/(a+2ε)),
 * so JS = G_P + G_Q + Σ_{k∈supp P ∩ supp Q} [f(a_k,b_k) − g(a_k) − g(b_k)] with G the sum of g over a
 * support: a pair costs logarithms only on the shared bins.
 */
export interface JsParts {
  binned: BinnedDensity;
  alone: Float64Array;
  total: number;
}

function aloneTerm(a: number): number {
  const p = a + EPSILON;
  const m = (a + 2 * EPSILON) / 2;
  return 0.5 * p * Math.log(p / m) + 0.5 * EPSILON * Math.log(EPSILON / m);
}

function pairTerm(a: number, b: number): number {
  const p = a + EPSILON;
  const q = b + EPSILON;
  const m = (p + q) / 2;
  return 0.5 * p * Math.log(p / m) + 0.5 * q * Math.log(q / m);
}

export function jsParts(p: Profile): JsParts {
  const binned = binnedDensity(p);
  const alone = new Float64Array(binned.bins.length);
  let total = 0;
  for (let i = 0; i < alone.length; i++) {
    alone[i] = aloneTerm(binned.density[i]!);
    total += alone[i]!;
  }
  return { binned, alone, total };
}

/**
 * `denseQ` holds Q's densities on all bins (0 off the support) and `denseAloneQ` its g values.
 */
export function jsFromParts(p: JsParts, q: JsParts, denseQ: Float64Array, denseAloneQ: Float64Array): number {
  let shared = 0;
  const { bins, density } = p.binned;
  for (let i = 0; i < bins.length; i++) {
    const k = bins[i]!;
    const b = denseQ[k]!;
    if (b > 0) shared += pairTerm(density[i]!, b) - p.alone[i]! - denseAloneQ[k]!;
  }
  return p.total + q.total + shared;
}

export function fillDenseJs(q: JsParts, density: Float64Array, alone: Float64Array): void {
  density.fill(0);
  alone.fill(0);
  const { bins } = q.binned;
  for (let i = 0; i < bins.length; i++) {
    density[bins[i]!] = q.binned.density[i]!;
    alone[bins[i]!] = q.alone[i]!;
  }
}

/** SPEC §3 Jensen–Shannon divergence (natural log) of the ε-smoothed numpy-histogram densities. */
export function jsDivergence(p: Profile, q: Profile): number {
  const qp = jsParts(q);
  const bins = p.vocabSize - 1;
  const density = new Float64Array(bins);
  const alone = new Float64Array(bins);
  fillDenseJs(qp, density, alone);
  return jsFromParts(jsParts(p), qp, density, alone);
}
