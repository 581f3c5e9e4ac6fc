import { describe, expect, it } from "vitest";
import { seededRandom, shuffledIndices } from "../src/util/prng.js";
import { gramMixtureLoss } from "../src/weights/gramLoss.js";
import { initMlp, mlpForward, mlpFromBuffer, mlpOffsets, mlpToBuffer } from "../src/weights/mlp.js";
import { zScoreRow } from "../src/weights/normalized.js";
import { trainScalarMlp } from "../src/weights/trainMlp.js";

/** Random Θ (n×p) and its Gram matrix computed directly. */
function randomTheta(n: number, p: number, seed: number): { theta: Float64Array[]; gram: Float64Array } {
  const random = seededRandom(seed);
  const theta = Array.from({ length: n }, () => Float64Array.from({ length: p }, () => random() * 2 - 1));
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += (theta[i]?.[k] as number) * (theta[j]?.[k] as number);
      gram[i * n + j] = s;
    }
  return { theta, gram };
}

describe("Gram-form mixture loss", () => {
  const n = 7;
  const p = 40;
  const { theta, gram } = randomTheta(n, p, 11);
  const rows = [0, 2, 3, 6];
  const candidates = [0, 1, 2, 3, 5, 6];
  const random = seededRandom(5);
  const logits = Float64Array.from({ length: rows.length * candidates.length }, () => random() * 3);

  it("equals the direct mean of ‖Σ w_j θ_j − θ_i‖² over parameters and rows", () => {
    const { loss, weights } = gramMixtureLoss({ gram, n, params: p, rows, candidates, logits });
    let direct = 0;
    rows.forEach((i, r) => {
      // Brute force: softmin over candidates other than i, the mixture, the squared residual.
      const e = candidates.map((j, c) =>
        j === i ? 0 : Math.exp(-(logits[r * candidates.length + c] as number)),
      );
      const s = e.reduce((a, b) => a + b, 0);
      for (let k = 0; k < p; k++) {
        let mix = 0;
        candidates.forEach((j, c) => {
          mix += ((e[c] as number) / s) * (theta[j]?.[k] as number);
        });
        direct += (mix - (theta[i]?.[k] as number)) ** 2;
      }
      for (let c = 0; c < candidates.length; c++) {
        expect(weights[r * candidates.length + c]).toBeCloseTo((e[c] as number) / s, 14);
      }
    });
    direct /= rows.length * p;
    expect(loss).toBeCloseTo(direct, 12);
    expect(weights[0]).toBe(0); // row 0, candidate 0: self
  });

  it("has the gradient that finite differences give", () => {
    const { gradient } = gramMixtureLoss({ gram, n, params: p, rows, candidates, logits, gradient: true });
    const h = 1e-6;
    for (let k = 0; k < logits.length; k++) {
      const plus = Float64Array.from(logits);
      const minus = Float64Array.from(logits);
      plus[k] = (plus[k] as number) + h;
      minus[k] = (minus[k] as number) - h;
      const fd =
        (gramMixtureLoss({ gram, n, params: p, rows, candidates, logits: plus }).loss -
          gramMixtureLoss({ gram, n, params: p, rows, candidates, logits: minus }).loss) /
        (2 * h);
      expect(gradient?.[k]).toBeCloseTo(fd, 8);
    }
  });
});

describe("MLP serialization", () => {
  it("round-trips weights and metadata", () => {
    const mlp = {
      ...initMlp(5, 1),
      meta: {
        metric: "js",
        seed: 1,
        epochs: 3,
        learningRate: 1e-3,
        trainIds: ["a", "b"],
        validIds: ["c"],
        zScore: "z",
        gramKey: "k",
        trainLoss: 0.5,
        validLoss: null,
        history: [1, 0.7, 0.5],
      },
    };
    const back = mlpFromBuffer(mlpToBuffer(mlp), "mem");
    expect(back).toEqual(mlp);
    expect(back.params.length).toBe(mlpOffsets(5).total);
  });

  it("rejects damaged bytes with messages that name the source", () => {
    const good = mlpToBuffer({ ...initMlp(3, 1), meta: { metric: "kl", trainIds: [] } as never });
    expect(() => mlpFromBuffer(Buffer.from("nope"), "x.mlp")).toThrow("x.mlp: not a loramix MLP (bad magic)");
    expect(() => mlpFromBuffer(good.subarray(0, good.length - 4), "x.mlp")).toThrow(
      `x.mlp: MLP with hidden 3 needs ${mlpOffsets(3).total * 4} parameter bytes, found ${mlpOffsets(3).total * 4 - 4}`,
    );
    const bad = Buffer.from(good);
    bad.writeUInt32LE(1e9, "loramix-mlp".length);
    expect(() => mlpFromBuffer(bad, "x.mlp")).toThrow(/MLP header length 1000000000 exceeds/);
  });
});

describe("MLP training", () => {
  // Three clusters of 6 adapters: a member is its cluster's centre plus small noise, so mixing its
  // cluster-mates reconstructs it well and mixing everything does not; distances say who is close.
  function clusteredBank(): {
    distances: Float64Array;
    gram: Float64Array;
    n: number;
    p: number;
    ids: string[];
  } {
    const random = seededRandom(99);
    const n = 18;
    const p = 30;
    const centres = Array.from({ length: 3 }, () => Array.from({ length: p }, () => random() * 2 - 1));
    const theta = Array.from({ length: n }, (_, i) =>
      (centres[i % 3] as number[]).map((c) => c + 0.05 * (random() * 2 - 1)),
    );
    const distances = new Float64Array(n * n);
    const gram = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let d = 0;
        let g = 0;
        for (let k = 0; k < p; k++) {
          d += ((theta[i]?.[k] as number) - (theta[j]?.[k] as number)) ** 2;
          g += (theta[i]?.[k] as number) * (theta[j]?.[k] as number);
        }
        distances[i * n + j] = Math.sqrt(d);
        gram[i * n + j] = g;
      }
    return { distances, gram, n, p, ids: Array.from({ length: n }, (_, i) => `e${i}`) };
  }

  it("computes with tfjs the same loss as the float64 JS forward, before any update", async () => {
    const bank = clusteredBank();
    const mlp = await trainScalarMlp({
      ...bank,
      params: bank.p,
      metric: "wd",
      gramKey: "g",
      hidden: 16,
      epochs: 0,
      seed: 4,
    });
    expect(mlp.params).toEqual(initMlp(16, 4).params);
    // Recompute the training loss independently: same split, z-scores, JS forward, Gram loss.
    const order = shuffledIndices(bank.n, seededRandom(4 ^ 0x5eed5eed));
    const train = order.slice(0, Math.round(bank.n * 0.8)).sort((a, b) => a - b);
    expect(mlp.meta.trainIds).toEqual(train.map((i) => `e${i}`));
    expect(mlp.meta.validIds).toHaveLength(bank.n - train.length);
    const logits = new Float64Array(train.length * train.length);
    train.forEach((i, r) => {
      const { z } = zScoreRow(train.map((j) => bank.distances[i * bank.n + j] as number));
      logits.set(mlpForward(mlp, z), r * train.length);
    });
    const expected = gramMixtureLoss({
      gram: bank.gram,
      n: bank.n,
      params: bank.p,
      rows: train,
      candidates: train,
      logits,
    });
    expect(mlp.meta.trainLoss).toBeCloseTo(expected.loss, 5);
  });

  it("lowers the reconstruction loss and is deterministic given the seed", async () => {
    const bank = clusteredBank();
    const options = {
      ...bank,
      params: bank.p,
      metric: "wd",
      gramKey: "g",
      hidden: 32,
      epochs: 60,
      learningRate: 1e-2,
    };
    const a = await trainScalarMlp({ ...options, seed: 1 });
    const b = await trainScalarMlp({ ...options, seed: 1 });
    expect(a.params).toEqual(b.params);
    const first = a.meta.history[0] as number;
    expect(a.meta.history).toHaveLength(60);
    expect(a.meta.trainLoss).toBeLessThan(first * 0.5);
    // Within-cluster noise is U(−0.05, 0.05) per coordinate: a perfect mixture of 4–5 cluster-mates
    // leaves about var·(1 + 1/k) ≈ 0.001; uniform weights over everything leave ≈ 0.2.
    expect(a.meta.trainLoss).toBeLessThan(0.01);
    expect(a.meta.validLoss).not.toBeNull();
    expect(a.meta.validLoss as number).toBeLessThan(0.05);

    // A timer-driven abort (as Ctrl-C arrives) gets through the synchronous tfjs work.
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const epochs: number[] = [];
    await expect(
      trainScalarMlp({
        ...options,
        epochs: 100_000,
        seed: 1,
        signal: controller.signal,
        onEpoch: (e) => epochs.push(e),
      }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    expect(epochs.length).toBeLessThan(100_000);
  }, 60_000);
});
