import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadDataset } from "../src/datasets/load.js";
import { jsDivergence } from "../src/distances/js.js";
import { klDivergence } from "../src/distances/kl.js";
import { bankDistanceMatrices, bankDistanceMatrix, type DistanceBank } from "../src/distances/matrix.js";
import { METRICS } from "../src/distances/metric.js";
import {
  KernelConvolver,
  mmdMultiscale,
  mmdParts,
  mmdSampled,
  multiscaleKernel,
  sampleProfile,
} from "../src/distances/mmd.js";
import { distanceMatrices, distancesToCandidates, pairwiseDistances } from "../src/distances/pairwise.js";
import { wassersteinOnIds } from "../src/distances/wasserstein.js";
import { LoramixError } from "../src/errors.js";
import { type Profile, profileRecords, profileText } from "../src/profiles/profile.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import { seededRandom } from "../src/util/prng.js";
import { SNI_DIR, tempDir } from "./helpers/shared.js";

const EPS = 1e-10;

function profileOf(tokens: readonly number[], vocabSize: number, hash = "h"): Profile {
  const counts = new Map<number, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  const ids = Uint32Array.from([...counts.keys()].sort((a, b) => a - b));
  return {
    tokenizer: "test",
    side: "both",
    vocabSize,
    nRecords: 1,
    nTokens: tokens.length,
    ids,
    counts: Float64Array.from(ids, (id) => counts.get(id) as number),
    datasetHash: hash,
  };
}

/** Token arrays over a random part of the vocabulary, skewed, often hitting the last two ids. */
function randomTokens(random: () => number, vocab: number, n: number): number[] {
  const lo = Math.floor(random() * vocab * 0.3);
  const span = Math.max(2, Math.floor(vocab * (0.3 + random() * 0.7)) - lo);
  return Array.from({ length: n }, () => {
    const r = random();
    if (r < 0.03) return vocab - 1;
    if (r < 0.06) return vocab - 2;
    return Math.min(vocab - 1, lo + Math.floor(random() ** 2 * span));
  });
}

// ---- Brute-force twins, written from numpy/scipy's definitions, sharing nothing with src.

/** numpy.histogram(tokens, bins=arange(0, V), density=True): edges 0..V−1, the last bin closed. */
function numpyDensity(tokens: readonly number[], vocab: number): number[] {
  const edges = Array.from({ length: vocab }, (_, i) => i);
  const h = new Array<number>(vocab - 1).fill(0);
  for (const t of tokens) {
    for (let b = 0; b < vocab - 1; b++) {
      const lastBin = b === vocab - 2;
      if (t >= (edges[b] as number) && (t < (edges[b + 1] as number) || (lastBin && t === edges[b + 1]))) {
        h[b] = (h[b] as number) + 1;
        break;
      }
    }
  }
  return h.map((c) => c / (tokens.length * 1)); // density: count / (n · bin width 1)
}

function bruteKl(p: number[], q: number[]): number {
  let s = 0;
  for (let k = 0; k < p.length; k++) {
    const a = (p[k] as number) + EPS;
    const b = (q[k] as number) + EPS;
    s += a * Math.log(a / b);
  }
  return s;
}

function bruteJs(p: number[], q: number[]): number {
  let s = 0;
  for (let k = 0; k < p.length; k++) {
    const a = (p[k] as number) + EPS;
    const b = (q[k] as number) + EPS;
    const m = (a + b) / 2;
    s += 0.5 * a * Math.log(a / m) + 0.5 * b * Math.log(b / m);
  }
  return s;
}

/** scipy.stats.wasserstein_distance(u, v): sort both, integrate |U − V| over the merged sorted values. */
function scipyWasserstein(u: readonly number[], v: readonly number[]): number {
  const us = [...u].sort((a, b) => a - b);
  const vs = [...v].sort((a, b) => a - b);
  const all = [...us, ...vs].sort((a, b) => a - b);
  const searchRight = (sorted: number[], x: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid] as number) <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  let s = 0;
  for (let i = 0; i + 1 < all.length; i++) {
    const x = all[i] as number;
    const cu = searchRight(us, x) / us.length;
    const cv = searchRight(vs, x) / vs.length;
    s += Math.abs(cu - cv) * ((all[i + 1] as number) - x);
  }
  return s;
}

/** MMD² over the exact id distributions with the full V×V kernel matrix. */
function bruteMmd(tp: readonly number[], tq: readonly number[], vocab: number): number {
  const p = new Array<number>(vocab).fill(0);
  const q = new Array<number>(vocab).fill(0);
  for (const t of tp) p[t] = (p[t] as number) + 1 / tp.length;
  for (const t of tq) q[t] = (q[t] as number) + 1 / tq.length;
  const kernel: number[][] = [];
  for (let x = 0; x < vocab; x++) {
    kernel.push([]);
    for (let y = 0; y < vocab; y++) {
      let k = 0;
      for (const a of [0.2, 0.5, 0.9, 1.3]) k += (a * a) / (a * a + (x - y) ** 2);
      kernel[x]?.push(k);
    }
  }
  let pp = 0;
  let qq = 0;
  let pq = 0;
  for (let x = 0; x < vocab; x++) {
    for (let y = 0; y < vocab; y++) {
      const k = kernel[x]?.[y] as number;
      pp += (p[x] as number) * (p[y] as number) * k;
      qq += (q[x] as number) * (q[y] as number) * k;
      pq += (p[x] as number) * (q[y] as number) * k;
    }
  }
  return pp + qq - 2 * pq;
}

/** The authors' estimator written out: mean of K_XX + K_YY − 2K_XY over all sample pairs. */
function naiveVStatistic(xs: readonly number[], ys: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) {
    for (let j = 0; j < ys.length; j++) {
      s +=
        multiscaleKernel((xs[i] as number) - (xs[j] as number)) +
        multiscaleKernel((ys[i] as number) - (ys[j] as number)) -
        2 * multiscaleKernel((xs[i] as number) - (ys[j] as number));
    }
  }
  return s / (xs.length * ys.length);
}

function expand(p: Profile): number[] {
  const out: number[] = [];
  for (let i = 0; i < p.ids.length; i++)
    for (let c = 0; c < (p.counts[i] as number); c++) out.push(p.ids[i] as number);
  return out;
}

function expectClose(actual: number, expected: number, rel: number, abs = 0): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(Math.max(abs, rel * Math.abs(expected)));
}

const random = seededRandom(7);
const cases = Array.from({ length: 12 }, (_, i) => {
  const vocab = 50 + Math.floor(random() * 150);
  return { vocab, a: randomTokens(random, vocab, 40 + i * 37), b: randomTokens(random, vocab, 70 + i * 11) };
});

describe("the four distances of SPEC §3 against brute-force twins", () => {
  it("work a tiny example by hand (V = 4, P = [0, 3], Q = [1, 2])", () => {
    // numpy bins [0,1) [1,2) [2,3]: id 3 falls in the last, closed bin, so p = (½, 0, ½), q = (0, ½, ½).
    // KL = (½+ε)ln((½+ε)/ε) + ε·ln(ε/(½+ε)) + 0 = ½·ln((½+ε)/ε) = ½·ln(5e9 + 1) = 11.16635187...
    // JS: bins 0 and 1 each give ½(½+ε)ln(2(½+ε)/(½+2ε)) + ½ε·ln(2ε/(½+2ε)) ≈ ¼ln2 − 1.1e-9; bin 2 gives 0,
    //   so JS = ½ln2 − 2.2e-9 = 0.34657358808...
    // WD: F_P = (½, ½, ½), F_Q = (0, ½, 1) at k = 0, 1, 2: |½| + 0 + |−½| = 1.
    // MMD over V = 4 ids: d = p − q = ½(1, −1, −1, 1), dᵀKd = ¼(4k0 − 2k1 − 4k2 + 2k3) with k0 = 4,
    //   k1 = .04/1.04 + .25/1.25 + .81/1.81 + 1.69/2.69 = 1.31422814, k2 = 0.53413599, k3 = 0.27211229,
    //   so MMD² = 4 − k1/2 − k2 + k3/2 = 2.94480608...
    const p = profileOf([0, 3], 4);
    const q = profileOf([1, 2], 4);
    expectClose(klDivergence(p, q), 11.166351874790255, 1e-14);
    expectClose(jsDivergence(p, q), 0.3465735880853317, 1e-14);
    expect(Math.abs(jsDivergence(p, q) - 0.5 * Math.LN2)).toBeLessThan(3e-9);
    expect(wassersteinOnIds(p, q)).toBe(1);
    expectClose(mmdMultiscale(p, q), 2.9448060842400112, 1e-14);
    expectClose(multiscaleKernel(1), 1.3142281387203238, 1e-15);
  });

  it("KL and JS equal the dense numpy-histogram sums with ε, including the last-bin rule", () => {
    for (const { vocab, a, b } of cases) {
      const p = numpyDensity(a, vocab);
      const q = numpyDensity(b, vocab);
      expectClose(klDivergence(profileOf(a, vocab), profileOf(b, vocab)), bruteKl(p, q), 1e-12);
      expectClose(klDivergence(profileOf(b, vocab), profileOf(a, vocab)), bruteKl(q, p), 1e-12);
      expectClose(jsDivergence(profileOf(a, vocab), profileOf(b, vocab)), bruteJs(p, q), 1e-12);
    }
  });

  it("merges ids V−2 and V−1 into one bin for KL and JS, but not for WD or MMD", () => {
    const p = profileOf([8, 8, 3], 10);
    const q = profileOf([9, 9, 3], 10);
    expect(klDivergence(p, q)).toBe(0);
    expect(jsDivergence(p, q)).toBe(0);
    expectClose(wassersteinOnIds(p, q), 2 / 3, 1e-15);
    expect(mmdMultiscale(p, q)).toBeGreaterThan(0.1);
  });

  it("WD equals scipy's wasserstein_distance on the raw token arrays", () => {
    for (const { vocab, a, b } of cases) {
      expectClose(wassersteinOnIds(profileOf(a, vocab), profileOf(b, vocab)), scipyWasserstein(a, b), 1e-12);
    }
  });

  it("exact MMD equals the full V×V kernel-matrix sum", () => {
    for (const { vocab, a, b } of cases.slice(0, 6)) {
      expectClose(
        mmdMultiscale(profileOf(a, vocab), profileOf(b, vocab)),
        bruteMmd(a, b, vocab),
        1e-12,
        1e-15,
      );
    }
  });

  it("the FFT convolution stays within 1e-13 of direct sums (dense V = 4096, sparse V = 32000)", () => {
    const rnd = seededRandom(11);
    for (const [vocab, support] of [
      [4096, 4096],
      [32000, 300],
    ] as const) {
      const ids = new Set<number>();
      while (ids.size < support) ids.add(Math.floor(rnd() * vocab));
      const sorted = Uint32Array.from([...ids].sort((x, y) => x - y));
      const raw = Float64Array.from(sorted, () => rnd());
      const sum = raw.reduce((s, x) => s + x, 0);
      const parts = { ids: sorted, prob: raw.map((x) => x / sum) };
      const kq = new Float64Array(vocab);
      new KernelConvolver(vocab).convolve(parts, kq);
      let worst = 0;
      for (let x = 0; x < vocab; x += vocab > 5000 ? 97 : 1) {
        let direct = 0;
        for (let i = 0; i < sorted.length; i++)
          direct += (parts.prob[i] as number) * multiscaleKernel(x - (sorted[i] as number));
        worst = Math.max(worst, Math.abs((kq[x] as number) - direct));
      }
      expect(worst).toBeLessThan(1e-13);
    }
  });

  it("sampled MMD equals the authors' naive 1000×1000 V-statistic, and is seeded", () => {
    for (const { vocab, a, b } of [cases[3], cases[9]].map((c) => c as (typeof cases)[number])) {
      const p = profileOf(a, vocab, "p");
      const q = profileOf(b, vocab, "q");
      const xs = expand(sampleProfile(p, 1000, 5));
      const ys = expand(sampleProfile(q, 1000, 5));
      expect(xs).toHaveLength(1000);
      expectClose(mmdSampled(p, q, { samples: 1000, seed: 5 }), naiveVStatistic(xs, ys), 1e-11, 1e-14);
      expect(mmdSampled(p, q, { seed: 5 })).toBe(mmdSampled(p, q, { seed: 5 }));
      expect(mmdSampled(p, q, { seed: 6 })).not.toBe(mmdSampled(p, q, { seed: 5 }));
    }
  });

  it("MMD sees the exact id distribution: ids unmerged, probabilities summing to 1", () => {
    const parts = mmdParts(profileOf([8, 9, 9, 3], 10));
    expect([...parts.ids]).toEqual([3, 8, 9]);
    expect([...parts.prob]).toEqual([0.25, 0.25, 0.5]);
  });

  it("draws samples in proportion to the counts", () => {
    const p = profileOf([...new Array<number>(900).fill(3), ...new Array<number>(100).fill(7)], 10);
    const s = sampleProfile(p, 20000, 1);
    expect([...s.ids]).toEqual([3, 7]);
    // Binomial(20000, 0.1): sd ≈ 42, so ±300 fails only for a broken sampler.
    expect(Math.abs((s.counts[1] as number) - 2000)).toBeLessThan(300);
  });
});

describe("pairwise matrices", () => {
  const vocab = 150;
  const profiles = cases.slice(0, 7).map(({ a }, i) =>
    profileOf(
      a.map((t) => t % vocab),
      vocab,
      `d${i}`,
    ),
  );
  const n = profiles.length;

  it("equal the per-pair functions (rows = targets), with exact zeros on the diagonal and exact symmetry", async () => {
    const m = await pairwiseDistances(profiles);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const [pi, pj] = [profiles[i] as Profile, profiles[j] as Profile];
        expectClose(m.kl?.[i * n + j] as number, klDivergence(pi, pj), 1e-13, 1e-15);
        expectClose(m.js?.[i * n + j] as number, jsDivergence(pi, pj), 1e-13, 1e-15);
        expectClose(m.wd?.[i * n + j] as number, wassersteinOnIds(pi, pj), 1e-13, 1e-15);
        expectClose(m.mmd?.[i * n + j] as number, mmdMultiscale(pi, pj), 1e-12, 1e-14);
        for (const metric of ["js", "wd", "mmd"] as const)
          expect(m[metric]?.[i * n + j]).toBe(m[metric]?.[j * n + i]);
      }
      for (const metric of METRICS) expect(m[metric]?.[i * n + i]).toBe(0);
    }
    expect(Math.abs((m.kl?.[1] as number) - (m.kl?.[n] as number))).toBeGreaterThan(1e-3);
  });

  it("rectangular, square and one-row computations agree", async () => {
    const square = await pairwiseDistances(profiles);
    const targets = profiles.slice(4);
    const rect = await distanceMatrices(targets, profiles);
    for (const metric of METRICS) {
      for (let t = 0; t < targets.length; t++) {
        const row = await distancesToCandidates(targets[t] as Profile, profiles, metric);
        for (let j = 0; j < n; j++) {
          const expected = square[metric]?.[(t + 4) * n + j] as number;
          expectClose(rect[metric]?.[t * n + j] as number, expected, 1e-13, 1e-14);
          expectClose(row[j] as number, expected, 1e-13, 1e-14);
        }
      }
    }
  });

  it("sampled MMD in a matrix is the per-pair sampled MMD wherever the profile sits", async () => {
    const m = await pairwiseDistances(profiles, { metrics: ["mmd"], mmd: "sampled", seed: 3 });
    const reversed = [...profiles].reverse();
    const r = await pairwiseDistances(reversed, { metrics: ["mmd"], mmd: "sampled", seed: 3 });
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const expected = mmdSampled(profiles[i] as Profile, profiles[j] as Profile, { seed: 3 });
        expectClose(m.mmd?.[i * n + j] as number, expected, 1e-12, 1e-14);
        expectClose(r.mmd?.[(n - 1 - i) * n + (n - 1 - j)] as number, expected, 1e-12, 1e-14);
      }
    }
  });

  it("refuse mixed tokenizers and empty profiles, and stop when aborted", async () => {
    const other = { ...(profiles[0] as Profile), tokenizer: "other" };
    await expect(pairwiseDistances([profiles[0] as Profile, other])).rejects.toThrow(
      /profile 1 was made with tokenizer other/,
    );
    const empty = {
      ...(profiles[0] as Profile),
      nTokens: 0,
      ids: new Uint32Array(0),
      counts: new Float64Array(0),
    };
    await expect(pairwiseDistances([empty])).rejects.toThrow(/profile 0 has no tokens/);
    const controller = new AbortController();
    controller.abort();
    const aborted = await pairwiseDistances(profiles, { signal: controller.signal }).catch((e: unknown) => e);
    expect(aborted).toBeInstanceOf(LoramixError);
    expect((aborted as LoramixError).code).toBe("ABORTED");
  });
});

describe("bank matrices", () => {
  function fakeBank(profiles: Profile[]) {
    const cache = new Map<string, Uint8Array>();
    let puts = 0;
    const entries = profiles.map((p, i) => ({ id: `e${i}`, dataPath: `/data/e${i}.json`, profile: p }));
    const bank: DistanceBank = {
      dir: "/bank",
      entries: () => entries.map((e) => ({ id: e.id, dataPath: e.dataPath })),
      profile: (id) => entries.find((e) => e.id === id)?.profile,
      getCache: (kind, key) => cache.get(`${kind}/${key}`),
      putCache: (kind, key, value) => {
        puts++;
        cache.set(`${kind}/${key}`, value.slice());
      },
    };
    return { bank, entries, puts: () => puts };
  }

  it("are cached under a key that changes with the data, options and metric", async () => {
    const profiles = cases.slice(0, 4).map(({ a }, i) =>
      profileOf(
        a.map((t) => t % 150),
        150,
        `d${i}`,
      ),
    );
    const { bank, entries, puts } = fakeBank(profiles);
    const first = await bankDistanceMatrix(bank, { metric: "js" });
    expect(first.ids).toEqual(["e0", "e1", "e2", "e3"]);
    expect([...first.values]).toEqual([
      ...((await pairwiseDistances(profiles, { metrics: ["js"] })).js as Float64Array),
    ]);
    expect(puts()).toBe(1);
    expect([...(await bankDistanceMatrix(bank, { metric: "js" })).values]).toEqual([...first.values]);
    expect(puts()).toBe(1);
    await bankDistanceMatrices(bank, ["js", "wd"]);
    expect(puts()).toBe(2);
    await bankDistanceMatrix(bank, { metric: "mmd", mmd: "sampled", seed: 1 });
    await bankDistanceMatrix(bank, { metric: "mmd", mmd: "sampled", seed: 2 });
    expect(puts()).toBe(4);
    (entries[2] as { profile: Profile }).profile = { ...(profiles[3] as Profile), datasetHash: "changed" };
    const changed = await bankDistanceMatrix(bank, { metric: "js" });
    expect(puts()).toBe(5);
    expect(changed.values[2 * 4 + 3]).toBe(0);
  });

  it("name the entries that need `bank index`", async () => {
    const { bank, entries } = fakeBank([profileOf([1, 2], 10)]);
    entries.push({ id: "stale", dataPath: "/data/stale.json", profile: undefined as unknown as Profile });
    await expect(bankDistanceMatrix(bank, { metric: "kl" })).rejects.toThrow(/stale.*bank index/);
  });
});

describe("real Super-NI data with the Mistral tokenizer", () => {
  it("profiles of three tasks give the brute-force distances on their raw token arrays", async () => {
    const files = readdirSync(SNI_DIR)
      .filter((f) => f.endsWith(".json"))
      .map((f) => join(SNI_DIR, f))
      .sort((x, y) => statSync(x).size - statSync(y).size)
      .slice(0, 3);
    const tokenizer = await loadTokenizer("mistral");
    const profiles: Profile[] = [];
    const raw: number[][] = [];
    for (const file of files) {
      const records = (await loadDataset(file)).splits.train.slice(0, 200);
      profiles.push(await profileRecords(records, { tokenizer: "mistral" }));
      raw.push(records.flatMap((r) => tokenizer.encode(profileText(r), { bos: true })));
    }
    const vocab = tokenizer.vocabSize;
    const m = await pairwiseDistances(profiles);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const [a, b] = [raw[i] as number[], raw[j] as number[]];
        expectClose(m.wd?.[i * 3 + j] as number, scipyWasserstein(a, b), 1e-12, 1e-12);
        const [p, q] = [denseBins(a, vocab), denseBins(b, vocab)];
        expectClose(m.kl?.[i * 3 + j] as number, bruteKl(p, q), 1e-12, 1e-14);
        expectClose(m.js?.[i * 3 + j] as number, bruteJs(p, q), 1e-12, 1e-14);
        expectClose(m.mmd?.[i * 3 + j] as number, sparseMmd(a, b), 1e-12, 1e-14);
      }
    }
    expect(m.kl?.[1]).toBeGreaterThan(0.01);
  }, 60_000);
});

/** The numpy bins at V = 32000 without the per-token edge scan of `numpyDensity` (same rule). */
function denseBins(tokens: readonly number[], vocab: number): number[] {
  const h = new Array<number>(vocab - 1).fill(0);
  for (const t of tokens) {
    const b = Math.min(t, vocab - 2);
    h[b] = (h[b] as number) + 1;
  }
  return h.map((c) => c / tokens.length);
}

/** MMD² as a double sum over the two supports (the V×V matrix restricted to where p or q is not 0). */
function sparseMmd(a: readonly number[], b: readonly number[]): number {
  const dist = (t: readonly number[]) => {
    const m = new Map<number, number>();
    for (const x of t) m.set(x, (m.get(x) ?? 0) + 1 / t.length);
    return [...m];
  };
  const p = dist(a);
  const q = dist(b);
  const quad = (u: [number, number][], v: [number, number][]) => {
    let s = 0;
    for (const [x, px] of u) for (const [y, qy] of v) s += px * qy * multiscaleKernel(x - y);
    return s;
  };
  return quad(p, p) + quad(q, q) - 2 * quad(p, q);
}

describe("loramix distances", () => {
  it("writes JSON and CSV matrices of a real bank, rows = targets, and checks its options", async () => {
    const { Bank } = await import("../src/bank/store.js");
    const { runCommand } = await import("citty");
    const command = (await import("../src/cli/commands/distances.js")).default;
    const { readFile } = await import("node:fs/promises");
    const tmp = await tempDir();
    try {
      const bank = await Bank.init(join(tmp.dir, "bank"), { tokenizer: "mistral" });
      const rnd = seededRandom(5);
      const profiles = [0, 1, 2].map((i) => ({
        ...profileOf(randomTokens(rnd, 32000, 500 + 100 * i), 32000, `text${i}`),
        tokenizer: "mistral",
      }));
      for (const [i, p] of profiles.entries()) {
        bank.putEntry({
          id: `task${i}`,
          adapterPath: null,
          adapterHash: null,
          dataPath: join(tmp.dir, `task${i}.jsonl`),
          dataHash: `data${i}`,
          dataOptions: {},
          metadata: {},
        });
        bank.putProfile(`task${i}`, p, `data${i}`);
      }
      bank.close();
      const expected = await pairwiseDistances(profiles);
      const run = (...rawArgs: string[]) =>
        runCommand(command, { rawArgs: [join(tmp.dir, "bank"), ...rawArgs] });

      await run("--metric", "kl", "--out", join(tmp.dir, "kl.json"));
      const kl = JSON.parse(await readFile(join(tmp.dir, "kl.json"), "utf8"));
      expect(kl.ids).toEqual(["task0", "task1", "task2"]);
      expect(kl.metric).toBe("kl");
      expect(kl.matrix.flat()).toEqual([...(expected.kl as Float64Array)]);

      await run("--metric", "wd", "--out", join(tmp.dir, "wd.csv"));
      const lines = (await readFile(join(tmp.dir, "wd.csv"), "utf8")).trim().split("\n");
      expect(lines[0]).toBe("target\\candidate,task0,task1,task2");
      expect(lines[2]?.split(",")[0]).toBe("task1");
      expect(lines[2]?.split(",").slice(1).map(Number)).toEqual([
        ...(expected.wd as Float64Array).subarray(3, 6),
      ]);

      await run("--metric", "all", "--mmd", "sampled", "--seed", "9", "--out", join(tmp.dir, "all.json"));
      const all = JSON.parse(await readFile(join(tmp.dir, "all.json"), "utf8"));
      expect(Object.keys(all.matrices).sort()).toEqual(["js", "kl", "mmd", "wd"]);
      expect(all).toMatchObject({ mmd: "sampled", seed: 9, samples: 1000 });
      expect(all.matrices.mmd[0][1]).toBeCloseTo(
        mmdSampled(profiles[0] as Profile, profiles[1] as Profile, { seed: 9 }),
        12,
      );

      await expect(run("--metric", "cosine", "--out", join(tmp.dir, "x.json"))).rejects.toThrow(
        /--metric must be/,
      );
      await expect(run("--metric", "all", "--out", join(tmp.dir, "x.csv"))).rejects.toThrow(/one matrix/);
      await expect(run("--seed", "-1", "--out", join(tmp.dir, "x.json"))).rejects.toThrow(/--seed/);
    } finally {
      await tmp.cleanup();
    }
  }, 60_000);
});
