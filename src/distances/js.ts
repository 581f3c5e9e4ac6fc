import type { Profile } from "../profiles/profile.js";
import { binnedDensity } from "./binned.js";
import { EPSILON } from "./metric.js";

/**
 * JS = ½ Σ p ln(p/m) + ½ Σ q ln(q/m), p = a+ε, q = b+ε, m = (p+q)/2 over the V−1 numpy bins. Bins
 * empty in both give 0. For a bin only in P the term is g(a) = ½(a+ε) ln(2(a+ε)/(a+2ε)) +
 * ½ε ln(2ε/(a+2ε)), so JS = G_P + G_Q + Σ_{k∈supp P ∩ supp Q} [f(a_k,b_k) − g(a_k) − g(b_k)] with G the
 * sum of g over a support: a pair costs logarithms only on the shared bins. P = Q gives exactly 0:
 * f(a,a) = 0, and the shared sum is −2·G_P accumulated in G_P's order.
 */
export interface JsParts {
  bins: Uint32Array;
  density: Float64Array;
  /** g(a) on the support. */
  alone: Float64Array;
  /** G = Σ g over the support, in support order. */
  total: number;
}

function aloneTerm(a: number): number {
  const p = a + EPSILON;
  const m = (a + 2 * EPSILON) / 2;
  return 0.5 * p * Math.log(p / m) + 0.5 * EPSILON * Math.log(EPSILON / m);
}

export function jsParts(p: Profile): JsParts {
  const { bins, density } = binnedDensity(p);
  const alone = new Float64Array(bins.length);
  let total = 0;
  for (let i = 0; i < alone.length; i++) {
    const g = aloneTerm(density[i] as number);
    alone[i] = g;
    total += g;
  }
  return { bins, density, alone, total };
}

/** Writes Q's densities and g values on all V−1 bins (0 off the support). */
export function fillDenseJs(q: JsParts, density: Float64Array, alone: Float64Array): void {
  density.fill(0);
  alone.fill(0);
  const { bins } = q;
  for (let i = 0; i < bins.length; i++) {
    const k = bins[i] as number;
    density[k] = q.density[i] as number;
    alone[k] = q.alone[i] as number;
  }
}

/** JS(P, Q) from P's parts and Q's dense arrays (`fillDenseJs`) and total. */
export function jsFromParts(
  p: JsParts,
  denseQ: Float64Array,
  denseAloneQ: Float64Array,
  totalQ: number,
): number {
  const { bins, density, alone } = p;
  let shared = 0;
  for (let i = 0; i < bins.length; i++) {
    const k = bins[i] as number;
    const b = denseQ[k] as number;
    if (b > 0) {
      const x = (density[i] as number) + EPSILON;
      const y = b + EPSILON;
      const m = (x + y) * 0.5;
      shared +=
        0.5 * x * Math.log(x / m) +
        0.5 * y * Math.log(y / m) -
        (alone[i] as number) -
        (denseAloneQ[k] as number);
    }
  }
  return p.total + totalQ + shared;
}

/** SPEC §3 Jensen–Shannon divergence (natural log) of the ε-smoothed numpy-histogram densities. */
export function jsDivergence(p: Profile, q: Profile): number {
  const qp = jsParts(q);
  const density = new Float64Array(p.vocabSize - 1);
  const alone = new Float64Array(p.vocabSize - 1);
  fillDenseJs(qp, density, alone);
  return jsFromParts(jsParts(p), density, alone, qp.total);
}
