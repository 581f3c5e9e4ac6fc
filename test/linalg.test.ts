import { describe, expect, it } from "vitest";
import { truncateLowRankSum } from "../src/merge/deltaSvd.js";
import {
  applyQ,
  householderQr,
  jacobiSvd,
  type Matrix,
  matmul,
  transpose,
  zeros,
} from "../src/merge/linalg.js";
import { uniformStream as seededRandom } from "../src/synth/random.js";

function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const rnd = seededRandom(seed);
  const m = zeros(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rnd() * 2 - 1;
  return m;
}

function identity(n: number): Matrix {
  const m = zeros(n, n);
  for (let i = 0; i < n; i++) m.data[i + i * n] = 1;
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

/** Eigenvalues of a symmetric matrix by the classical two-sided Jacobi method: the brute-force twin. */
function symmetricEigenvalues(s: number[][]): number[] {
  const n = s.length;
  const a = s.map((row) => [...row]);
  const at = (i: number, j: number) => a[i]?.[j] as number;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) off += at(i, j) ** 2;
    if (off < 1e-26) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(at(p, q)) < 1e-300) continue;
        const theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < n; k++) {
          const akp = at(k, p);
          const akq = at(k, q);
          (a[k] as number[])[p] = c * akp - sn * akq;
          (a[k] as number[])[q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = at(p, k);
          const aqk = at(q, k);
          (a[p] as number[])[k] = c * apk - sn * aqk;
          (a[q] as number[])[k] = sn * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => at(i, i)).sort((x, y) => y - x);
}

/** Singular values of a dense row-major out×in matrix, via eigenvalues of its smaller Gram matrix. */
function denseSingularValues(w: number[][]): number[] {
  const rows = w.length;
  const cols = w[0]?.length ?? 0;
  const small = Math.min(rows, cols);
  const gram = Array.from({ length: small }, (_, i) =>
    Array.from({ length: small }, (_, j) => {
      let sum = 0;
      if (cols <= rows) for (let k = 0; k < rows; k++) sum += (w[k]?.[i] as number) * (w[k]?.[j] as number);
      else for (let k = 0; k < cols; k++) sum += (w[i]?.[k] as number) * (w[j]?.[k] as number);
      return sum;
    }),
  );
  return symmetricEigenvalues(gram).map((x) => Math.sqrt(Math.max(0, x)));
}

describe("householderQr", () => {
  it("factors a tall matrix into orthonormal Q and upper-triangular R", () => {
    const m = randomMatrix(40, 12, 1);
    const qr = householderQr(m);
    const q = applyQ(qr, identity(12));
    expect(maxAbsDiff(matmul(q, qr.r).data, m.data)).toBeLessThan(1e-13);
    expect(maxAbsDiff(matmul(transpose(q), q).data, identity(12).data)).toBeLessThan(1e-13);
    for (let j = 0; j < 12; j++) for (let i = j + 1; i < 12; i++) expect(qr.r.data[i + j * 12]).toBe(0);
  });

  it("handles zero and dependent columns", () => {
    const m = randomMatrix(10, 4, 2);
    m.data.fill(0, 10, 20); // column 1 is zero
    for (let i = 0; i < 10; i++) m.data[30 + i] = 2 * (m.data[i] as number); // column 3 = 2 × column 0
    const qr = householderQr(m);
    const q = applyQ(qr, identity(4));
    expect(maxAbsDiff(matmul(q, qr.r).data, m.data)).toBeLessThan(1e-13);
    expect(qr.r.data[1 + 4]).toBe(0);
  });

  it("refuses wide matrices", () => {
    expect(() => householderQr(zeros(3, 5))).toThrow(/rows ≥ cols/);
  });
});

describe("jacobiSvd", () => {
  it("recovers planted singular values and reconstructs the matrix", () => {
    const u0 = applyQ(householderQr(randomMatrix(30, 8, 3)), identity(8));
    const v0 = applyQ(householderQr(randomMatrix(8, 8, 4)), identity(8));
    const planted = [50, 10, 3, 1, 0.5, 1e-3, 1e-6, 0];
    const scaled = zeros(30, 8);
    for (let j = 0; j < 8; j++)
      for (let i = 0; i < 30; i++)
        scaled.data[i + j * 30] = (u0.data[i + j * 30] as number) * (planted[j] as number);
    const m = matmul(scaled, transpose(v0));
    const svd = jacobiSvd(m);
    for (let j = 0; j < 8; j++)
      expect(Math.abs((svd.s[j] as number) - (planted[j] as number))).toBeLessThan(1e-12 * 50);
    const us = zeros(30, 8);
    for (let j = 0; j < 8; j++)
      for (let i = 0; i < 30; i++)
        us.data[i + j * 30] = (svd.u.data[i + j * 30] as number) * (svd.s[j] as number);
    expect(maxAbsDiff(matmul(us, transpose(svd.v)).data, m.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmul(transpose(svd.v), svd.v).data, identity(8).data)).toBeLessThan(1e-13);
  });

  it("agrees with the eigenvalues of the Gram matrix on a random matrix", () => {
    const m = randomMatrix(15, 9, 5);
    const rows = Array.from({ length: 15 }, (_, i) =>
      Array.from({ length: 9 }, (_, j) => m.data[i + j * 15] as number),
    );
    const expected = denseSingularValues(rows);
    const svd = jacobiSvd(m);
    expect(maxAbsDiff(svd.s, expected)).toBeLessThan(1e-10);
  });
});

describe("truncateLowRankSum (delta-svd core)", () => {
  function randomTerms(count: number, r: number, out: number, inF: number, seed: number) {
    const rnd = seededRandom(seed);
    return Array.from({ length: count }, () => ({
      r,
      a: Float32Array.from({ length: r * inF }, () => rnd() * 2 - 1),
      b: Float32Array.from({ length: out * r }, () => rnd() * 2 - 1),
      coeff: rnd() * 2 - 0.5,
    }));
  }
  function denseSum(terms: ReturnType<typeof randomTerms>, out: number, inF: number): number[][] {
    const w = Array.from({ length: out }, () => new Array<number>(inF).fill(0));
    for (const t of terms)
      for (let i = 0; i < out; i++)
        for (let l = 0; l < inF; l++)
          for (let c = 0; c < t.r; c++)
            (w[i] as number[])[l] =
              (w[i]?.[l] as number) + t.coeff * (t.b[i * t.r + c] as number) * (t.a[c * inF + l] as number);
    return w;
  }
  function residual(
    w: number[][],
    res: { a: Float32Array; b: Float32Array },
    rank: number,
    scale: number,
  ): number {
    let sum = 0;
    const inF = w[0]?.length ?? 0;
    w.forEach((row, i) => {
      row.forEach((x, l) => {
        let approx = 0;
        for (let c = 0; c < rank; c++)
          approx += (res.b[i * rank + c] as number) * (res.a[c * inF + l] as number);
        sum += (x - scale * approx) ** 2;
      });
    });
    return Math.sqrt(sum);
  }

  // Factored path (K = 9 < min dims), dense tall path (K = 24 ≥ 12), dense wide path (out < in).
  for (const [out, inF, count, r] of [
    [30, 20, 3, 3],
    [40, 12, 4, 6],
    [10, 33, 5, 4],
  ] as const) {
    it(`reaches the Eckart–Young error for ${count} terms of rank ${r} on ${out}×${inF}`, () => {
      const terms = randomTerms(count, r, out, inF, out * 7 + inF);
      const rank = 4;
      const scale = 2.5;
      const w = denseSum(terms, out, inF);
      const sigma = denseSingularValues(w);
      const best = Math.sqrt(sigma.slice(rank).reduce((s, x) => s + x * x, 0));
      const res = truncateLowRankSum({ terms, outFeatures: out, inFeatures: inF, rank, scale });
      const err = residual(w, res, rank, scale);
      expect(best).toBeGreaterThan(0.1);
      // float32 output factors bound the agreement.
      expect(Math.abs(err - best)).toBeLessThan(1e-5 * (sigma[0] as number));
    });
  }

  it("is exact when the stacked rank does not exceed the target rank", () => {
    const terms = randomTerms(2, 3, 25, 18, 9);
    const w = denseSum(terms, 25, 18);
    const res = truncateLowRankSum({ terms, outFeatures: 25, inFeatures: 18, rank: 8, scale: 0.5 });
    const norm = Math.sqrt(w.flat().reduce((s, x) => s + x * x, 0));
    expect(residual(w, res, 8, 0.5)).toBeLessThan(1e-6 * norm);
    // The two unused rank slots stay zero.
    for (let i = 0; i < 25; i++) expect(res.b[i * 8 + 7]).toBe(0);
  });
});
