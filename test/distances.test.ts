import { describe, expect, it } from "vitest";
import { distanceMatrices } from "../src/distances/pairwise.js";
import { jsDivergence } from "../src/distances/js.js";
import { klDivergence } from "../src/distances/kl.js";
import { mmdMultiscale, mmdSampled, multiscaleKernel, sampleProfile } from "../src/distances/mmd.js";
import { wassersteinOnIds } from "../src/distances/wasserstein.js";
import type { Profile } from "../src/profiles/profile.js";
import { seededRandom } from "../src/util/prng.js";

function profileOf(tokens: number[], vocabSize: number, hash = "h"): Profile {
  const counts = new Map<number, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  const ids = Uint32Array.from([...counts.keys()].sort((a, b) => a - b));
  return {
    tokenizer: "test",
    vocabSize,
    nRecords: 1,
    nTokens: tokens.length,
    ids,
    counts: Float64Array.from(ids, (id) => counts.get(id)!),
    datasetHash: hash,
  };
}

/** Random token arrays over part of the vocabulary, some hitting the last two ids. */
function randomTokens(random: () => number, vocab: number, n: number): number[] {
  const lo = Math.floor(random() * vocab * 0.3);
  const span = Math.max(2, Math.floor(vocab * (0.3 + random() * 0.7)) - lo);
  return Array.from({ length: n }, () => Math.min(vocab - 1, lo + Math.floor(random() ** 2 * span) + (random() < 0.05 ? vocab : 0)));
}

// ---- Brute-force twins, written from the definitions (numpy / scipy behaviour), not from src.

/** numpy.histogram(tokens, bins=arange(0, V), density=True): V−1 unit bins, the last one closed. */
function numpyDensity(tokens: number[], vocab: number): number[] {
  const h = new Array(vocab - 1).fill(0);
  for (const t of tokens) {
    const bin = t === vocab - 1 ? vocab - 2 : t; // the last edge belongs to the last bin
    h[bin]++;
  }
  return h.map((c) => c / tokens.length);
}

function bruteKl(p: number[], q: number[]): number {
  let s = 0;
  for (let k = 0; k < p.length; k++) s += (p[k]! + 1e-10) * Math.log((p[k]! + 1e-10) / (q[k]! + 1e-10));
  return s;
}

function bruteJs(p: number[], q: number[]): number {
  let s = 0;
  for (let k = 0; k < p.length; k++) {
    const a = p[k]! + 1e-10;
    const b = q[k]! + 1e-10;
    const m = (a + b) / 2;
    s += 0.5 * a * Math.log(a / m) + 0.5 * b * Math.log(b / m);
  }
  return s;
}

/** scipy.stats.wasserstein_distance on raw samples: integrate |U − V| between sorted merged values. */
function scipyWasserstein(u: number[], v: number[]): number {
  const us = [...u].sort((a, b) => a - b);
  const vs = [...v].sort((a, b) => a - b);
  const all = [...us, ...vs].sort((a, b) => a - b);
  const cdf = (sorted: number[], x: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo / sorted.length;
  };
  let s = 0;
  for (let i = 0; i + 1 < all.length; i++) s += Math.abs(cdf(us, all[i]!) - cdf(vs, all[i]!)) * (all[i + 1]! - all[i]!);
  return s;
}

/** MMD² with the full V×V kernel matrix over exact id distributions. */
function bruteMmd(tp: number[], tq: number[], vocab: number): number {
  const p = new Array(vocab).fill(0);
  const q = new Array(vocab).fill(0);
  for (const t of tp) p[t] += 1 / tp.length;
  for (const t of tq) q[t] += 1 / tq.length;
  let s = 0;
  for (let x = 0; x < vocab; x++) {
    for (let y = 0; y < vocab; y++) {
      const k = multiscaleKernel(x - y);
      s += p[x] * p[y] * k + q[x] * q[y] * k - 2 * p[x] * q[y] * k;
    }
  }
  return s;
}

function expand(p: Profile): number[] {
  const out: number[] = [];
  p.ids.forEach((id, i) => {
    for (let c = 0; c < p.counts[i]!; c++) out.push(id);
  });
  return out;
}

const close = (a: number, b: number, rel = 1e-10) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(b)));

describe("distances (SPEC §3) against brute-force twins", () => {
  const random = seededRandom(7);
  const cases = Array.from({ length: 12 }, (_, i) => {
    const vocab = 20 + Math.floor(random() * 150);
    return { vocab, a: randomTokens(random, vocab, 50 + i * 37), b: randomTokens(random, vocab, 80 + i * 11) };
  });

  it("KL and JS equal the dense numpy-histogram sums with ε, including the last-bin rule", () => {
    for (const { vocab, a, b } of cases) {
      const p = numpyDensity(a, vocab);
      const q = numpyDensity(b, vocab);
      close(klDivergence(profileOf(a, vocab), profileOf(b, vocab)), bruteKl(p, q), 1e-12);
      close(jsDivergence(profileOf(a, vocab), profileOf(b, vocab)), bruteJs(p, q), 1e-12);
    }
  });

  it("merges ids V−2 and V−1 into one bin for KL (and only there)", () => {
    const v = 10;
    const p = profileOf([8, 8, 3], v);
    const q = profileOf([9, 9, 3], v); // same bins, different ids
    expect(Math.abs(klDivergence(p, q))).toBeLessThan(1e-12);
    expect(wassersteinOnIds(p, q)).toBeCloseTo(2 / 3, 12);
  });

  it("WD equals scipy's wasserstein_distance on the raw token arrays", () => {
    for (const { vocab, a, b } of cases) close(wassersteinOnIds(profileOf(a, vocab), profileOf(b, vocab)), scipyWasserstein(a, b));
  });

  it("exact MMD equals the full kernel-matrix sum", () => {
    for (const { vocab, a, b } of cases.slice(0, 6)) close(mmdMultiscale(profileOf(a, vocab), profileOf(b, vocab)), bruteMmd(a, b, vocab), 1e-9);
  });

  it("matches a hand-worked example (V = 4, P = {0, 1}, Q = {1, 1})", () => {
    // k(0) = 4 (four scales); k(1) = .04/1.04 + .25/1.25 + .81/1.81 + 1.69/2.69 = 1.3142281...
    // pᵀKp = ¼(4 + 4 + 2k(1)), qᵀKq = 4, pᵀKq = ½k(1) + ½·4 → MMD² = (4 − k(1))/2 = 1.3428859...
    const k1 = 0.04 / 1.04 + 0.25 / 1.25 + 0.81 / 1.81 + 1.69 / 2.69;
    const p = profileOf([0, 1], 4);
    const q = profileOf([1, 1], 4);
    close(mmdMultiscale(p, q), (4 - k1) / 2, 1e-12);
    // F_P = (.5, 1, 1), F_Q = (0, 1, 1): WD = .5.
    expect(wassersteinOnIds(p, q)).toBeCloseTo(0.5, 15);
    // Bins (V−1 = 3): p = (.5, .5, 0), q = (0, 1, 0); KL = (.5+ε)ln((.5+ε)/ε) + (.5+ε)ln((.5+ε)/(1+ε)) + 0.
    const e = 1e-10;
    close(klDivergence(p, q), (0.5 + e) * Math.log((0.5 + e) / e) + (0.5 + e) * Math.log((0.5 + e) / (1 + e)), 1e-12);
  });

  it("sampled MMD is the V-statistic over all sample pairs, seeded", () => {
    const { vocab, a, b } = cases[3]!;
    const p = profileOf(a, vocab, "p");
    const q = profileOf(b, vocab, "q");
    const xs = expand(sampleProfile(p, 300, 5));
    const ys = expand(sampleProfile(q, 300, 5));
    expect(xs).toHaveLength(300);
    let s = 0;
    for (const x of xs) for (const y of xs) s += multiscaleKernel(x - y);
    for (const x of ys) for (const y of ys) s += multiscaleKernel(x - y);
    for (const x of xs) for (const y of ys) s -= 2 * multiscaleKernel(x - y);
    close(mmdSampled(p, q, { samples: 300, seed: 5 }), s / (300 * 300), 1e-9);
    expect(mmdSampled(p, q, { samples: 300, seed: 5 })).toBe(mmdSampled(p, q, { samples: 300, seed: 5 }));
    expect(mmdSampled(p, q, { samples: 300, seed: 6 })).not.toBe(mmdSampled(p, q, { samples: 300, seed: 5 }));
  });

  it("pairwise matrices equal the per-pair functions, rows = targets, and self-distances are 0", async () => {
    const vocab = 120;
    const profiles = cases.slice(0, 5).map(({ a }, i) => profileOf(a.map((t) => t % vocab), vocab, `d${i}`));
    const m = await distanceMatrices(profiles, profiles);
    const n = profiles.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        close(m.kl![i * n + j]!, klDivergence(profiles[i]!, profiles[j]!), 1e-12);
        close(m.js![i * n + j]!, jsDivergence(profiles[i]!, profiles[j]!), 1e-12);
        close(m.wd![i * n + j]!, wassersteinOnIds(profiles[i]!, profiles[j]!), 1e-12);
        close(m.mmd![i * n + j]!, mmdMultiscale(profiles[i]!, profiles[j]!), 1e-9);
      }
      for (const metric of ["kl", "js", "wd", "mmd"] as const) expect(Math.abs(m[metric]![i * n + i]!)).toBeLessThan(1e-12);
    }
    // KL is not symmetric; the row is the target.
    expect(m.kl![1]).not.toBeCloseTo(m.kl![n]!, 6);
  });
});
