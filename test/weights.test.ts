import { describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { attentionalWeights } from "../src/weights/attentional.js";
import { leaveOneOutWeights } from "../src/weights/leaveOneOut.js";
import { initMlp, mlpForward } from "../src/weights/mlp.js";
import { neuralWeights } from "../src/weights/neural.js";
import { normalizedWeights, zScoreRow } from "../src/weights/normalized.js";
import { pruneWeights } from "../src/weights/prune.js";
import { softmin } from "../src/weights/softmin.js";

const close = (actual: ArrayLike<number>, expected: number[], digits = 12) => {
  expect(actual.length).toBe(expected.length);
  for (const [k, e] of expected.entries()) expect(actual[k]).toBeCloseTo(e, digits);
};

describe("softmin and attentional weights", () => {
  it("matches a hand-worked example", () => {
    // exp(−0) : exp(−ln 2) : exp(−ln 4) = 1 : 1/2 : 1/4, sum 7/4 → 4/7, 2/7, 1/7
    close(softmin([0, Math.LN2, 2 * Math.LN2]), [4 / 7, 2 / 7, 1 / 7]);
  });

  it("is stable for huge distances", () => {
    // Naively exp(−1000) underflows to 0 for all three and gives 0/0.
    close(softmin([1000, 1000 + Math.LN2, 1000 + 2 * Math.LN2]), [4 / 7, 2 / 7, 1 / 7]);
    close(softmin([-1000, -1000]), [0.5, 0.5]);
  });

  it("applies the temperature and masks the target", () => {
    // τ = 2 halves the distances: back to 0, ln 2, 2 ln 2.
    close(attentionalWeights([0, 2 * Math.LN2, 4 * Math.LN2], { temperature: 2 }), [4 / 7, 2 / 7, 1 / 7]);
    // Self (index 0) masked: exp(−ln 2) : exp(−ln 4) = 1/2 : 1/4 → 2/3, 1/3.
    close(attentionalWeights([0, Math.LN2, 2 * Math.LN2], { selfIndex: 0 }), [0, 2 / 3, 1 / 3]);
    close(attentionalWeights([0, Math.LN2, 2 * Math.LN2], { mask: [false, true, false] }), [0.8, 0, 0.2]);
  });

  it("rejects bad options with LoramixError", () => {
    expect(() => attentionalWeights([1, 2], { temperature: 0 })).toThrow(LoramixError);
    expect(() => attentionalWeights([1, 2], { selfIndex: 2 })).toThrow(/outside the row/);
    expect(() => attentionalWeights([1], { selfIndex: 0 })).toThrow(/no candidate/);
  });
});

describe("normalized weights (paper-compatible statistics)", () => {
  it("z-scores with population std over the row including self", () => {
    // Row [0, 1, 2, 3]: mean 1.5, var = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25 (ddof 0), std 1.1180340.
    const { z, mean, std } = zScoreRow([0, 1, 2, 3]);
    expect(mean).toBe(1.5);
    expect(std).toBeCloseTo(Math.sqrt(1.25), 15);
    close(z, [-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738]);
  });

  it("matches a hand-worked leave-one-out row", () => {
    // z of candidates 1..3 = −0.44721, 0.44721, 1.34164; exp(−z) = 1.56393, 0.63941, 0.26145,
    // sum 2.46479 → 0.634520, 0.259418, 0.106061; the self entry gets 0.
    const w = normalizedWeights([0, 1, 2, 3], { selfIndex: 0 });
    close(w, [0, 0.634520475430834, 0.25941844242206247, 0.10606108214710365]);
    // Statistics without the self entry (mean 2, std √(2/3)) would give 0.72455, 0.21290, 0.06256.
    expect(w[1]).not.toBeCloseTo(0.7245482752947965, 3);
  });

  it("agrees with a brute-force twin on random rows", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let trial = 0; trial < 20; trial++) {
      const n = 2 + Math.floor(rand() * 30);
      const row = Array.from({ length: n }, () => rand() * 5);
      const self = Math.floor(rand() * n);
      const tau = 0.25 + rand() * 2;
      const mean = row.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      const e = row.map((d, j) => (j === self ? 0 : Math.exp(-(d - mean) / std / tau)));
      const sum = e.reduce((a, b) => a + b, 0);
      close(
        normalizedWeights(row, { selfIndex: self, temperature: tau }),
        e.map((x) => x / sum),
        10,
      );
    }
  });

  it("gives uniform weights when the row has zero std", () => {
    close(normalizedWeights([0.3, 0.3, 0.3, 0.3], { selfIndex: 2 }), [1 / 3, 1 / 3, 0, 1 / 3]);
    close(normalizedWeights([5, 5]), [0.5, 0.5]);
  });

  it("leaves masked entries out of the statistics", () => {
    // Entry 3 masked: statistics over [0, 1, 2] (mean 1, std √(2/3)); self 0 masked from weights.
    const w = normalizedWeights([0, 1, 2, 100], { selfIndex: 0, mask: [false, false, false, true] });
    const s = Math.sqrt(2 / 3);
    const e1 = Math.exp(-0 / s);
    const e2 = Math.exp(-1 / s);
    close(w, [0, e1 / (e1 + e2), e2 / (e1 + e2), 0]);
  });
});

describe("neural weights", () => {
  it("applies the MLP to the z-scores, then softmin", () => {
    const mlp = initMlp(8, 3);
    const row = [0.5, 0.1, 0.9, 0.4];
    const { z } = zScoreRow(row);
    const y = mlpForward(mlp, [z[0] as number, z[2] as number, z[3] as number]);
    const e = Array.from(y, (v) => Math.exp(-v));
    const s = e.reduce((a, b) => a + b, 0);
    close(neuralWeights(row, mlp, { selfIndex: 1 }), [
      (e[0] as number) / s,
      0,
      (e[1] as number) / s,
      (e[2] as number) / s,
    ]);
  });
});

describe("pruneWeights", () => {
  it("keeps the K largest and renormalises", () => {
    // Top 2 of [0.1, 0.4, 0.2, 0.3] are 0.4 and 0.3 → 4/7, 3/7.
    close(pruneWeights([0.1, 0.4, 0.2, 0.3], { topK: 2 }), [0, 4 / 7, 0, 3 / 7]);
  });

  it("breaks ties at the K-th place by the lower index", () => {
    close(pruneWeights([0.25, 0.25, 0.25, 0.25], { topK: 3 }), [1 / 3, 1 / 3, 1 / 3, 0]);
    close(pruneWeights([0.1, 0.3, 0.3, 0.3], { topK: 1 }), [0, 1, 0, 0]);
  });

  it("drops weights below the minimum, after top-k", () => {
    // min 0.25 keeps 0.4 and 0.3 → 4/7, 3/7.
    close(pruneWeights([0.1, 0.4, 0.2, 0.3], { minWeight: 0.25 }), [0, 4 / 7, 0, 3 / 7]);
    close(pruneWeights([0.1, 0.4, 0.2, 0.3], { topK: 3, minWeight: 0.25 }), [0, 4 / 7, 0, 3 / 7]);
    expect(() => pruneWeights([0.5, 0.5], { minWeight: 0.9 })).toThrow(
      /removes every candidate \(largest weight 0.5\)/,
    );
    expect(() => pruneWeights([0.5, 0.5], { topK: 0 })).toThrow(LoramixError);
  });

  it("never revives a zero weight", () => {
    close(pruneWeights([0, 0.5, 0.5], { topK: 3 }), [0, 0.5, 0.5]);
  });
});

describe("leave-one-out weight matrix", () => {
  const n = 5;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) d[i * n + j] = i === j ? 0 : Math.abs(Math.sin(i * 7 + j * 3));

  it("has row i equal to the single-row weights with self i masked", () => {
    for (const method of ["attentional", "normalized"] as const) {
      const w = leaveOneOutWeights(d, n, { method, temperature: 0.5 });
      for (let i = 0; i < n; i++) {
        const row = w.subarray(i * n, (i + 1) * n);
        expect(row[i]).toBe(0);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        const single =
          method === "attentional"
            ? attentionalWeights(d.subarray(i * n, (i + 1) * n), { selfIndex: i, temperature: 0.5 })
            : normalizedWeights(d.subarray(i * n, (i + 1) * n), { selfIndex: i, temperature: 0.5 });
        close(row, Array.from(single));
      }
    }
  });

  it("masks candidates in every row but keeps masked targets' self statistics", () => {
    const mask = [false, false, true, false, false];
    const w = leaveOneOutWeights(d, n, { method: "normalized", mask });
    for (let i = 0; i < n; i++) expect(w[i * n + 2]).toBe(0);
    // Row 2 is itself masked as a candidate, yet its own distance stays in its statistics.
    close(
      w.subarray(2 * n, 3 * n),
      Array.from(normalizedWeights(d.subarray(2 * n, 3 * n), { selfIndex: 2 })),
    );
    expect(() => leaveOneOutWeights(d, n, { method: "neural" })).toThrow(/train-mlp/);
  });
});
