import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../src/bank/add.js";
import { indexBank } from "../src/bank/indexBank.js";
import { type Bank, initBank } from "../src/bank/store.js";
import { hfToGguf } from "../src/convert/hfToGguf.js";
import { loadDataset } from "../src/datasets/load.js";
import type { DatasetRecord } from "../src/datasets/record.js";
import { bankDistanceMatrix } from "../src/distances/matrix.js";
import { LoramixError } from "../src/errors.js";
import { type LlamaDims, MISTRAL_7B_DIMS, weightsPerToken } from "../src/formats/llamaConfig.js";
import { readModelInfo } from "../src/formats/modelInfo.js";
import { loadAdapter } from "../src/formats/peft.js";
import { mixAndFinetune } from "../src/generate/finetune.js";
import { flatness } from "../src/generate/flatness.js";
import { generateAdapter } from "../src/generate/generateAdapter.js";
import { mixAdapters } from "../src/merge/mixAdapters.js";
import { isSyntheticAdapter, SYNTHETIC_MARKER } from "../src/merge/sources.js";
import { MAX_CONTRIBUTORS, updateNormRatio } from "../src/merge/updateNorm.js";
import { profileRecords, profileToJson } from "../src/profiles/profile.js";
import { lossCandidates } from "../src/select/candidates.js";
import { scoreExamples } from "../src/select/examples.js";
import { fitWeights } from "../src/select/fitWeights.js";
import { LlamaScorer, scoringTokens } from "../src/select/llamaScorer.js";
import { defaultBudget, planSchedule } from "../src/select/schedule.js";
import type { CandidateScorer, ScoreExample } from "../src/select/scorer.js";
import { WeightScorer } from "../src/select/scoreWeights.js";
import { selectByLoss } from "../src/select/selectByLoss.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { evaluateLoss } from "../src/train/evaluateLoss.js";
import { DEFAULT_FINETUNE_STEPS } from "../src/train/finetuneLora.js";
import { readSafetensorsF32 } from "./helpers/safetensors.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/** Three trained TinyStories adapters of the shipped testbed, of different answer families. */
const ADAPTER_TASKS = [
  "task092_check_prime_classification", // Yes/No
  "task155_count_nouns_verbs", // small integers
  "task1385_anli_r1_entailment", // entailment labels
];
const TARGET = join(SNI_DIR, "task069_abductivenli_classification.json"); // "1"/"2": not in the bank

describe("lossCandidates", () => {
  it("takes the N nearest (ties by bank order, masked ones out), then the mixtures that are not one-hot", () => {
    const d = Float64Array.from([0.5, 0.1, 0.3, 0.1, 0.9]);
    const ids = ["a", "b", "c", "d", "e"];
    const set = lossCandidates(d, ids, {
      nearest: 3,
      temperatures: [1, 1e-4],
      mask: [false, false, true, false, false],
    });
    expect(set.slice(0, 3).map((c) => c.label)).toEqual(["nearest 1: b", "nearest 2: d", "nearest 3: a"]);
    expect([...(set[0]?.weights ?? [])]).toEqual([0, 1, 0, 0, 0]);
    // τ = 1: z-scores over the unmasked row, softmin; τ = 1e-4 puts 1/2 on b and d: not one-hot, kept.
    const open = [0, 1, 3, 4];
    const mean = open.reduce((s, j) => s + (d[j] as number), 0) / open.length;
    const std = Math.sqrt(open.reduce((s, j) => s + ((d[j] as number) - mean) ** 2, 0) / open.length);
    const e = open.map((j) => Math.exp(-((d[j] as number) - mean) / std));
    const sum = e.reduce((a, b) => a + b, 0);
    const mix = set[3];
    expect(mix?.label).toBe("normalized τ=1");
    for (const [k, j] of open.entries()) expect(mix?.weights[j]).toBeCloseTo((e[k] as number) / sum, 12);
    expect(mix?.weights[2]).toBe(0);
    expect(set[4]?.weights[1]).toBeCloseTo(0.5, 6);
    expect(set).toHaveLength(5);
    // A unique nearest makes the sharp mixture one-hot: it is the nearest adapter again, not scored twice.
    const sharp = lossCandidates(Float64Array.from([0.5, 0.1, 0.3]), ["a", "b", "c"], {
      nearest: 1,
      temperatures: [1e-4],
    });
    expect(sharp.map((c) => c.label)).toEqual(["nearest 1: b"]);
    expect(() => lossCandidates(d, ids, { mask: [true, true, true, true, true] })).toThrow(/no adapter/);
  });
});

describe("update norm ratio", () => {
  it("equals ‖Σ w ΔW‖ / Σ w ‖ΔW‖ with every ΔW = (α/r)·B·A formed densely", async () => {
    const dirs = ADAPTER_TASKS.slice(0, 2).map((t) => join(REPO, "testbed/adapters", t));
    const weights = [0.3, 0.7];
    const { ratio: got } = await updateNormRatio(await Promise.all(dirs.map((d) => loadAdapter(d))), weights);
    const tensors = dirs.map((d) => readSafetensorsF32(join(d, "adapter_model.safetensors")));
    const config = JSON.parse(readFileSync(join(dirs[0] as string, "adapter_config.json"), "utf8"));
    const scale = config.lora_alpha / config.r;
    let mixed = 0;
    let norm0 = 0;
    let norm1 = 0;
    for (const name of tensors[0]?.keys() ?? []) {
      if (!name.includes("lora_A")) continue;
      const deltas = tensors.map((t) => {
        const a = t.get(name)!;
        const b = t.get(name.replace("lora_A", "lora_B"))!;
        const [r, inF] = a.shape as [number, number];
        const outF = b.shape[0] as number;
        const d = new Float64Array(outF * inF);
        for (let i = 0; i < outF; i++)
          for (let l = 0; l < inF; l++) {
            let v = 0;
            for (let c = 0; c < r; c++) v += (b.data[i * r + c] as number) * (a.data[c * inF + l] as number);
            d[i * inF + l] = scale * v;
          }
        return d;
      });
      for (let k = 0; k < (deltas[0] as Float64Array).length; k++) {
        const m = weights[0]! * deltas[0]![k]! + weights[1]! * deltas[1]![k]!;
        mixed += m * m;
        norm0 += deltas[0]![k]! ** 2;
        norm1 += deltas[1]![k]! ** 2;
      }
    }
    const expected = Math.sqrt(mixed) / (weights[0]! * Math.sqrt(norm0) + weights[1]! * Math.sqrt(norm1));
    expect(got).not.toBeNull();
    expect(Math.abs((got as number) - expected)).toBeLessThan(1e-9);
    expect(expected).toBeLessThan(1);
    expect((await updateNormRatio([await loadAdapter(dirs[0] as string)], [1])).ratio).toBeCloseTo(1, 12);
    expect(
      await updateNormRatio(await Promise.all(dirs.map((d) => loadAdapter(d))), weights, { budget: 1 }),
    ).toEqual({
      ratio: null,
      skipped: expect.stringMatching(/^2 contributors this large cost .* multiply-adds$/),
    });
    // Many small contributors are priced out by their count (2,070 tiny adapters took 92 s).
    const one = await loadAdapter(dirs[0] as string);
    const many = Array.from({ length: MAX_CONTRIBUTORS + 1 }, () => one);
    expect(
      await updateNormRatio(
        many,
        many.map(() => 1 / many.length),
      ),
    ).toEqual({
      ratio: null,
      skipped: `${MAX_CONTRIBUTORS + 1} contributors, more than ${MAX_CONTRIBUTORS}`,
    });
    expect((await updateNormRatio(many.slice(0, 3), [0.2, 0.3, 0.5])).ratio).toBeCloseTo(1, 9);
  });
});

describe("flatness", () => {
  it("counts effective adapters as 1/Σw² and warns above the threshold", () => {
    expect(flatness([1, 0, 0]).effective).toBe(1);
    expect(flatness([1, 0, 0]).warning).toBeNull();
    const flat = flatness(Array.from({ length: 10 }, () => 0.1));
    expect(flat.effective).toBeCloseTo(10, 12);
    expect(flat.warning).toMatch(/10\.0 effective adapters.*~32% of its contributors' size/);
    // With the ratio measured, it decides: spread weights whose updates agree are not flagged.
    expect(
      flatness(
        Array.from({ length: 10 }, () => 0.1),
        { ratio: 0.9 },
      ).warning,
    ).toBeNull();
    expect(flatness([0.5, 0.5], { ratio: 0.3 }).warning).toMatch(/30% of its contributors' size/);
  });
});

/** Loss = a fixed number per adapter directory, recorded in the order asked. */
class FakeScorer implements CandidateScorer {
  readonly name = "fake";
  readonly tokenizer = {} as Tokenizer;
  readonly eosId = 2;
  readonly contextSize = 128;
  readonly reusesPrefix = false;
  readonly asked: (string | null)[] = [];
  constructor(private readonly loss: (adapter: string | null) => number) {}
  async losses(adapter: string | null, examples: readonly ScoreExample[]): Promise<Float64Array> {
    this.asked.push(adapter);
    const v = this.loss(adapter);
    if (Number.isNaN(v)) throw new Error(`cannot score ${adapter}`);
    return Float64Array.from(examples, () => v);
  }
  async dispose(): Promise<void> {}
  async [Symbol.asyncDispose](): Promise<void> {}
}

describe("selectByLoss", () => {
  const examples: ScoreExample[] = [{ ids: Int32Array.from([1, 5, 6]), outputStart: 2 }];
  const one = (j: number) => Float64Array.from([0, 1, 2], (k) => (k === j ? 1 : 0));
  const adapters = ["/a", "/b", "/c"];
  const candidates = [
    { label: "a", kind: "single" as const, weights: one(0) },
    { label: "b", kind: "single" as const, weights: one(1) },
    { label: "c", kind: "single" as const, weights: one(2) },
  ];

  it("keeps the lowest loss, reports the base model's and a candidate that failed", async () => {
    const losses: Record<string, number> = { "/a": 2, "/b": Number.NaN, "/c": 1.5 };
    const scorer = new FakeScorer((a) => (a === null ? 3 : (losses[a] as number)));
    const s = await selectByLoss({ scorer, adapters, candidates, examples, budget: null });
    expect(scorer.asked).toEqual([null, "/a", "/b", "/c"]);
    expect(s.baseLoss).toBe(3);
    expect(s.chosen).toBe(2);
    expect(s.scored[1]?.error).toMatch(/cannot score \/b/);
    expect(s.scored[1]?.loss).toBeNaN();
  });

  it("fails with the reason when no candidate could be scored, and stops on abort", async () => {
    const failing = new FakeScorer((a) => (a === null ? 1 : Number.NaN));
    await expect(
      selectByLoss({ scorer: failing, adapters, candidates, examples, budget: null }),
    ).rejects.toThrow(/every candidate failed to score; the first: a: cannot score \/a/);
    const controller = new AbortController();
    controller.abort();
    const scorer = new FakeScorer(() => 1);
    await expect(
      selectByLoss({ scorer, adapters, candidates, examples, budget: null, signal: controller.signal }),
    ).rejects.toMatchObject({ code: "ABORTED" });
  });
});

describe("successive halving under a token budget", () => {
  /** `n` examples of `length` tokens whose first `shared` tokens are the same, the answer last. */
  const examplesOf = (n: number, length: number, shared: number): ScoreExample[] =>
    Array.from({ length: n }, (_, i) => ({
      ids: Int32Array.from({ length }, (_, t) => (t < shared ? 7 : 100 + i * length + t)),
      outputStart: length - 1,
    }));

  it("counts the shared prefix once, as llama.cpp evaluates it", () => {
    // 3 examples of 50 tokens sharing 40: the first whole (49: the last token is only predicted),
    // then 49 − 40 tokens each.
    expect(scoringTokens(examplesOf(3, 50, 40), true)).toBe(49 + 2 * 9);
    expect(scoringTokens(examplesOf(3, 50, 40), false)).toBe(3 * 49);
    expect(scoringTokens(examplesOf(1, 50, 40), true)).toBe(49);
    // What an example shares stops before its first answer token: that token's logits need it evaluated.
    expect(scoringTokens(examplesOf(2, 50, 50), true)).toBe(49 + 1);
  });

  it("plans the hand-worked schedule and refuses a budget below its smallest", () => {
    // 8 examples of 10 tokens, nothing shared: 9 tokens each. n₀ = 1: the base model 9, then
    // 5 × 9, 3 × 9 (the second example), 2 × 18 (the third and fourth): 117 ≤ 200 = half the budget;
    // n₀ = 2 would take 18 + 5·18 + 3·18 + 2·36 = 234. The fit: (400 − 117) / 36 = 7 trials of 4 records.
    const examples = examplesOf(8, 10, 0);
    const s = planSchedule({ candidates: 5, examples, budget: 400, fitTrials: 16, reusesPrefix: false });
    expect(s.stages).toEqual([
      { candidates: 5, records: 1 },
      { candidates: 3, records: 2 },
      { candidates: 2, records: 4 },
    ]);
    expect(s.fit).toEqual({ trials: 7, records: 4 });
    expect(s.tokens).toEqual({ selection: 117, fit: 7 * 36 });
    // No budget: every candidate on every example, then every trial (loramix before budgets).
    const all = planSchedule({ candidates: 5, examples, budget: null, fitTrials: 16, reusesPrefix: false });
    expect(all.stages).toEqual([{ candidates: 5, records: 8 }]);
    expect(all.fit).toEqual({ trials: 16, records: 8 });
    expect(() =>
      planSchedule({ candidates: 5, examples, budget: 100, fitTrials: 16, reusesPrefix: false }),
    ).toThrow(
      /a budget of 100 tokens cannot score 5 candidates and the base model on one example each; the smallest that works is 117/,
    );
    // A budget that is not a whole number (a caller's undefined turned NaN, say) is refused, not read as "no fit".
    for (const budget of [Number.NaN, 0, 250.5])
      expect(() =>
        planSchedule({ candidates: 5, examples, budget, fitTrials: 16, reusesPrefix: false }),
      ).toThrow(/budget must be a positive whole number of tokens/);
  });

  it("gives a smaller model more tokens for the same compute, a tiny one no budget", async () => {
    // The testbed's base counted from its own weight file, not from its config: every 2-D weight a
    // token is multiplied through (the tied embedding is read as lm_head).
    const file = readFileSync(join(TINY_MODEL, "model.safetensors"));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString("utf8"));
    let tiny = 0;
    for (const [name, t] of Object.entries(header) as [string, { shape: number[] }][])
      if (/(_proj|lm_head)\.weight$/.test(name)) tiny += (t.shape[0] as number) * (t.shape[1] as number);
    const config = await readModelInfo(TINY_MODEL);
    expect(weightsPerToken(config.dims as LlamaDims)).toBe(tiny);
    expect(tiny).toBe(655_360);
    // Mistral-7B by hand: 32 × (4096 × (4096 + 1024 + 1024 + 4096) + 3 × 4096 × 14336) + 32000 × 4096.
    expect(weightsPerToken(MISTRAL_7B_DIMS)).toBe(7_110_393_856);
    expect(defaultBudget(MISTRAL_7B_DIMS)).toBe(16_000);
    // TinyLlama-1.1B: 22 × (2048 × (2048 + 256 + 256 + 2048) + 3 × 2048 × 5632) + 32000 × 2048 = 1,034,420,224.
    const tinyLlama = {
      nLayer: 22,
      nEmbd: 2048,
      nFf: 5632,
      nHead: 32,
      nHeadKv: 4,
      headDim: 64,
      vocabSize: 32000,
    };
    expect(defaultBudget(tinyLlama)).toBe(Math.round((16_000 * 7_110_393_856) / 1_034_420_224));
    // The testbed's model: 173 million tokens' worth, more than any default schedule spends.
    expect(defaultBudget(config.dims)).toBeNull();
    // Larger than Mistral-7B: never below the default; unknown shapes (a server): the default.
    expect(defaultBudget({ ...MISTRAL_7B_DIMS, nLayer: 80, nEmbd: 8192 })).toBe(16_000);
    expect(defaultBudget(null)).toBe(16_000);
  });

  it("scores the better half on more records each round and keeps the last round's best", async () => {
    const names = ["/a", "/b", "/c", "/d", "/e"];
    const losses: Record<string, number> = { "/a": 5, "/b": 1, "/c": 4, "/d": 2, "/e": 3 };
    const scorer = new FakeScorer((a) => (a === null ? 9 : (losses[a] as number)));
    const candidates = names.map((n, j) => ({
      label: n,
      kind: "single" as const,
      weights: Float64Array.from(names, (_, k) => (k === j ? 1 : 0)),
    }));
    const s = await selectByLoss({
      scorer,
      adapters: names,
      candidates,
      examples: examplesOf(8, 10, 0),
      budget: 200,
    });
    expect(scorer.asked).toEqual([null, "/a", "/b", "/c", "/d", "/e", "/b", "/d", "/e", "/b", "/d"]);
    expect(s.scored.map((c) => c.examples)).toEqual([1, 4, 1, 4, 2]);
    expect(s.scored[s.chosen]?.label).toBe("/b");
    expect(s.tokens).toBe(117);
    expect(s.fit).toBeUndefined();
  });
});

describe("fitWeights", () => {
  it("lowers a loss of the mixed tensors from the best candidate, never raises it, and is seeded", async () => {
    const dirs = ADAPTER_TASKS.map((t) => join(REPO, "testbed/adapters", t));
    const tensors = dirs.map((d) => readSafetensorsF32(join(d, "adapter_model.safetensors")));
    const names = [...(tensors[0]?.keys() ?? [])];
    // The loss is the squared distance of the mix to the even mix of the first two adapters.
    const scorer = new (class extends FakeScorer {
      override async losses(adapter: string | null, examples: readonly ScoreExample[]) {
        const got = readSafetensorsF32(join(adapter as string, "adapter_model.safetensors"));
        let loss = 0;
        for (const name of names) {
          const x = got.get(name)!.data;
          const a = tensors[0]!.get(name)!.data;
          const b = tensors[1]!.get(name)!.data;
          for (let k = 0; k < x.length; k++) loss += ((x[k] as number) - 0.5 * (a[k]! + b[k]!)) ** 2;
        }
        return Float64Array.from(examples, () => loss);
      }
    })(() => 0);
    const one = (j: number) => Float64Array.from(dirs, (_, k) => (k === j ? 1 : 0));
    const half = (): number => {
      let loss = 0;
      for (const name of names) {
        const a = tensors[0]!.get(name)!.data;
        const b = tensors[1]!.get(name)!.data;
        for (let k = 0; k < a.length; k++) loss += (0.5 * (a[k]! - b[k]!)) ** 2;
      }
      return loss;
    };
    const pool = [0, 1, 2].map((j) => ({
      label: `nearest ${j + 1}`,
      kind: "single" as const,
      weights: one(j),
    }));
    const examples: ScoreExample[] = [{ ids: Int32Array.from([1, 2]), outputStart: 1 }];
    const run = async () => {
      await using weigher = new WeightScorer(scorer, dirs);
      return fitWeights({ weigher, pool, startLoss: half(), examples, trials: 12 });
    };
    const a = await run();
    expect(a.startLoss).toBe(half());
    expect(a.loss).toBeLessThan(a.startLoss);
    expect(a.weights.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
    // Moving towards the even mix puts weight on the second adapter.
    expect(a.weights[1]).toBeGreaterThan(0.05);
    const b = await run();
    expect([...b.weights]).toEqual([...a.weights]);
  }, 60_000);
});

describe("candidates scored with llama.cpp on real adapters", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let bank: Bank;
  let train: DatasetRecord[];
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await loadTokenizer(TINY_MODEL);
    tmp = await tempDir("loramix-select-");
    const tasks = join(tmp.dir, "tasks");
    mkdirSync(tasks);
    bank = await initBank(join(tmp.dir, "bank"), { tokenizer: TINY_MODEL });
    for (const t of ADAPTER_TASKS) {
      symlinkSync(join(SNI_DIR, `${t}.json`), join(tasks, `${t}.json`));
      await addEntry(bank, {
        id: t,
        data: join(tasks, `${t}.json`),
        adapter: join(REPO, "testbed/adapters", t),
      });
    }
    await indexBank(bank, { threads: 1 });
    await indexBank(bank, { side: "output", threads: 1 });
    train = (await loadDataset(TARGET)).splits.train;
  }, 120_000);
  afterAll(async () => {
    bank?.close();
    await tmp?.cleanup();
  });

  it("banks keep one profile per side; output-side distances differ from input + output ones", async () => {
    const id = ADAPTER_TASKS[0] as string;
    const both = bank.profile(id);
    const output = bank.profile(id, "output");
    expect(both?.side).toBe("both");
    expect(output?.side).toBe("output");
    // Brute force: the output side counts BOS + the tokens of each train record's first output (SPEC §7).
    const records = (await loadDataset(join(SNI_DIR, `${id}.json`))).splits.train;
    const tokens = records.reduce((s, r) => s + tokenizer.encode(r.output[0] ?? "", { bos: true }).length, 0);
    expect(output?.nTokens).toBe(tokens);
    expect(bank.staleIds("output")).toEqual([]);
    expect(bank.staleIds("input")).toEqual([...ADAPTER_TASKS].sort());
    const a = await bankDistanceMatrix(bank, { metric: "js" });
    const b = await bankDistanceMatrix(bank, { metric: "js", side: "output" });
    expect([...a.values]).not.toEqual([...b.values]);
    await expect(bankDistanceMatrix(bank, { metric: "js", side: "input" })).rejects.toThrow(
      /3 entries have no up-to-date input-side profile .*bank index .* --side input/,
    );
  });

  it("a candidate's loss is the trainer's mean output cross-entropy (tfjs, an independent implementation)", async () => {
    const examples = scoreExamples(train, { tokenizer, eosId: 2 }, { context: 128, answerTokens: 16 }, 6);
    expect(examples).toHaveLength(6);
    const scorer = await LlamaScorer.open({ model: TINY_MODEL, contextSize: 128, kvCache: "f32" });
    try {
      const adapter = join(REPO, "testbed/adapters", ADAPTER_TASKS[1] as string);
      for (const dir of [null, adapter]) {
        const got = await scorer.losses(dir, examples);
        const byId = new Map(examples.map((e, i) => [Array.from(e.ids).join(","), i]));
        const ref = await evaluateLoss({
          model: TINY_MODEL,
          adapter: dir,
          // The first records in split order hold the 6 scored ones (those with an output).
          records: train.slice(0, 12),
          rule: { context: 128, answerTokens: 16 },
        });
        let matched = 0;
        for (const ex of ref.examples) {
          const i = byId.get(Array.from(ex.ids).join(","));
          if (i === undefined) continue;
          matched++;
          expect(Math.abs((got[i] as number) - ex.loss / ex.tokens)).toBeLessThan(1e-3);
        }
        expect(matched).toBe(6);
      }
    } finally {
      await scorer.dispose();
    }
  }, 180_000);

  it("generate --select loss writes the lowest-loss candidate and records every candidate in loramix.json", async () => {
    const out = join(tmp.dir, "gen-loss");
    const result = await generateAdapter(bank, {
      data: TARGET,
      select: "loss",
      model: TINY_MODEL,
      nearest: 2,
      scoreExamples: 8,
      context: 128,
      answerTokens: 16,
      out,
    });
    const sel = result.selection;
    expect(sel).toBeDefined();
    if (!sel) return;
    // Two nearest + the mixtures at τ 1, 0.3, 0.1 that are not one-hot.
    expect(sel.scored.slice(0, 2).every((c) => c.kind === "single")).toBe(true);
    expect(sel.scored.length).toBeGreaterThanOrEqual(3);
    const best = Math.min(...sel.scored.map((c) => c.loss));
    expect(sel.scored[sel.chosen]?.loss).toBe(best);
    const written = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8"));
    expect(written.method).toBe("select-loss");
    expect(written.options.side).toBe("output");
    expect(written.options.selection.candidates).toHaveLength(sel.scored.length);
    expect(written.options.selection.chosen).toBe(sel.scored[sel.chosen]?.label);
    expect(written.options.selection.baseLoss).toBeCloseTo(sel.baseLoss, 12);
    // The written adapter is the chosen weights' mix: for a single adapter, its tensors exactly.
    const chosen = sel.scored[sel.chosen];
    if (chosen?.kind === "single") {
      const j = chosen.weights.indexOf(1);
      const src = readSafetensorsF32(
        join(bank.entries()[j]?.adapterPath as string, "adapter_model.safetensors"),
      );
      const got = readSafetensorsF32(join(out, "adapter_model.safetensors"));
      for (const [name, t] of src) expect([...(got.get(name)?.data ?? [])]).toEqual([...t.data]);
    }
    expect(result.flatness.effective).toBeCloseTo(1 / chosen!.weights.reduce((s, w) => s + w * w, 0), 9);
  }, 180_000);

  it("a mixture that wins the selection is what generate writes: Σ w_j θ_j at its weights, and loramix.json names the server", async () => {
    // A scoring server that favours any mixture (its loramix.json has several sources) over single
    // adapters and the base model, so the first mixture candidate wins whatever llama.cpp thinks.
    const kinds = new Map<string, "mixture" | "single">();
    const server = createServer(async (req, res) => {
      let text = "";
      for await (const chunk of req) text += chunk;
      const body = JSON.parse(text) as Record<string, unknown>;
      if (req.url === "/v1/load_lora_adapter") {
        const record = join(String(body.lora_path), "loramix.json");
        const sources = existsSync(record) ? JSON.parse(readFileSync(record, "utf8")).mix.sources.length : 1;
        kinds.set(String(body.lora_name), sources > 1 ? "mixture" : "single");
      }
      if (req.url !== "/v1/completions") {
        res.end("ok");
        return;
      }
      const lp = body.model === "base" ? -3 : kinds.get(String(body.model)) === "mixture" ? -0.5 : -1;
      const ids = body.prompt as number[];
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          choices: [{ logprobs: { token_logprobs: ids.map((_, i) => (i === 0 ? null : lp)) } }],
        }),
      );
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    const out = join(tmp.dir, "gen-mixture");
    try {
      const result = await generateAdapter(bank, {
        data: TARGET,
        select: "loss",
        scoreServer: { baseUrl, model: "base" },
        nearest: 2,
        scoreExamples: 4,
        context: 128,
        answerTokens: 16,
        out,
      });
      const written = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8"));
      expect(written.options.selection.chosen).toBe("normalized τ=1");
      expect(written.options.selection.server).toEqual({ baseUrl, model: "base" });
      expect(written.options.selection.baseLoss).toBeCloseTo(3, 12);
      // Brute force: z-scores of the written distances (population std), then softmin.
      const rows = result.weights;
      const d = rows.map((r) => r.distance);
      const mean = d.reduce((a, b) => a + b, 0) / d.length;
      const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
      const e = d.map((x) => Math.exp(-(x - mean) / std));
      const sum = e.reduce((a, b) => a + b, 0);
      for (const [k, r] of rows.entries()) expect(r.weight).toBeCloseTo((e[k] as number) / sum, 12);
      expect(rows.filter((r) => r.weight > 0.01)).toHaveLength(3);
      const inputs = rows.map((r) =>
        readSafetensorsF32(
          join(bank.entries().find((x) => x.id === r.id)?.adapterPath as string, "adapter_model.safetensors"),
        ),
      );
      const got = readSafetensorsF32(join(out, "adapter_model.safetensors"));
      let maxErr = 0;
      for (const [name, t] of got) {
        t.data.forEach((v, i) => {
          const want = rows.reduce(
            (acc, r, k) => acc + r.weight * (inputs[k]?.get(name)?.data[i] as number),
            0,
          );
          maxErr = Math.max(maxErr, Math.abs(v - want));
        });
      }
      expect(maxErr).toBeLessThan(1e-6);
    } finally {
      server.close();
    }
  }, 120_000);

  it("the default fine-tunes the fitted mix on the train records: a lower loss than the mix (tfjs evaluateLoss), the mix's config and layout kept", async () => {
    const common = {
      data: TARGET,
      model: TINY_MODEL,
      nearest: 2,
      scoreExamples: 8,
      context: 128,
      answerTokens: 16,
    };
    const mixDir = join(tmp.dir, "gen-mix");
    const finetunedDir = join(tmp.dir, "gen-finetuned");
    const mix = await generateAdapter(bank, { ...common, finetune: 0, out: mixDir });
    expect(mix.finetune).toBeUndefined();
    const finetuned = await generateAdapter(bank, { ...common, out: finetunedDir });
    const r = finetuned.finetune;
    expect(r?.steps).toBe(DEFAULT_FINETUNE_STEPS);
    // The fit is seeded: the fine-tuning starts from the very mix written with finetune 0.
    expect(finetuned.weights).toEqual(mix.weights);
    // It trains on the first steps × batch train records with an output, as generate keeps them.
    const withOutput = train.filter((x) => x.output.length > 0);
    expect(r?.examples).toBe(Math.min(withOutput.length, DEFAULT_FINETUNE_STEPS * r!.batchSize));
    const records = withOutput.slice(0, r?.examples);
    const rule = { model: TINY_MODEL, records, rule: { context: 128, answerTokens: 16 } };
    const before = await evaluateLoss({ ...rule, adapter: mixDir });
    const after = await evaluateLoss({ ...rule, adapter: finetunedDir });
    expect(after.loss).toBeLessThan(before.loss);
    // The output keeps the mix's adapter_config.json and tensor layout; only the values moved.
    const config = (dir: string) => readFileSync(join(dir, "adapter_config.json"), "utf8");
    expect(config(finetunedDir)).toBe(config(mixDir));
    const a = readSafetensorsF32(join(mixDir, "adapter_model.safetensors"));
    const b = readSafetensorsF32(join(finetunedDir, "adapter_model.safetensors"));
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, t] of a) expect(b.get(name)?.shape).toEqual(t.shape);
    expect([...a].some(([name, t]) => t.data.some((v, i) => v !== b.get(name)?.data[i]))).toBe(true);
    const record = JSON.parse(readFileSync(join(finetunedDir, "loramix.json"), "utf8"));
    expect(record.finetune.steps).toBe(DEFAULT_FINETUNE_STEPS);
    expect(record.finetune.examples).toBe(r?.examples);
    expect(record.weights).toEqual(JSON.parse(readFileSync(join(mixDir, "loramix.json"), "utf8")).weights);
    expect(finetuned.notes.join("\n")).toMatch(
      new RegExp(`fine-tune: ${DEFAULT_FINETUNE_STEPS} training steps on \\d+ train records lowered`),
    );
  }, 300_000);

  it("a fine-tuned mix keeps the mix's records: loramix.json and the synthetic marker", async () => {
    const out = join(tmp.dir, "finetuned-synthetic");
    const { finetune } = await mixAndFinetune(
      async (dir) => {
        // A source marked as synth-bank marks its adapters: the mix is synthetic too.
        const source = join(tmp.dir, "synthetic-source");
        cpSync(bank.entries()[0]?.adapterPath as string, source, { recursive: true });
        writeFileSync(join(source, SYNTHETIC_MARKER), `${JSON.stringify({ synthetic: true })}\n`);
        return mixAdapters({ adapters: [source], weights: [1], out: dir, record: { note: "kept" } });
      },
      { model: TINY_MODEL, records: train, steps: 2, rule: { context: 128, answerTokens: 16 }, out },
    );
    expect(isSyntheticAdapter(out)).toBe(true);
    const record = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8"));
    expect(record.note).toBe("kept");
    expect(record.finetune.steps).toBe(2);
    expect(record.finetune.examples).toBe(finetune.examples);
    expect(finetune.examples).toBe(16);
  }, 120_000);

  it("an interrupted fine-tuning leaves no output", async () => {
    const out = join(tmp.dir, "gen-interrupted");
    const controller = new AbortController();
    const error = await generateAdapter(bank, {
      data: TARGET,
      model: TINY_MODEL,
      select: "loss",
      nearest: 1,
      scoreExamples: 4,
      context: 128,
      answerTokens: 16,
      finetune: 20,
      out,
      signal: controller.signal,
      progress: (e) => {
        if (e.phase === "train" && e.done === 3) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as LoramixError).code).toBe("ABORTED");
    expect(existsSync(out)).toBe(false);
  }, 120_000);

  it("fine-tuning asked for where it cannot run is refused before any work; by default it is skipped with a note", async () => {
    const gguf = join(tmp.dir, "tiny.gguf");
    await hfToGguf({ modelDir: TINY_MODEL, out: gguf });
    const never = join(tmp.dir, "never-finetuned");
    const quick = {
      data: TARGET,
      select: "loss" as const,
      nearest: 1,
      scoreExamples: 4,
      context: 128,
      answerTokens: 16,
    };
    await expect(
      generateAdapter(bank, { ...quick, model: gguf, tokenizer: TINY_MODEL, finetune: 3, out: never }),
    ).rejects.toThrow(/tiny\.gguf: fine-tuning trains on the CPU from a Hugging Face model directory/);
    await expect(generateAdapter(bank, { ...quick, finetune: 3, out: never })).rejects.toThrow(
      /fine-tuning trains from the base model: give `model`/,
    );
    await expect(
      generateAdapter(bank, { data: TARGET, method: "normalized", finetune: 3, out: never }),
    ).rejects.toThrow(/fine-tuning applies to select fit and loss/);
    await expect(
      generateAdapter(bank, { ...quick, model: TINY_MODEL, finetune: -1, out: never }),
    ).rejects.toThrow(/finetune must be a whole number of steps ≥ 0, got -1/);
    // A profile.json has no train records: refused right after it is read, before any scoring.
    const profile = join(tmp.dir, "target.profile.json");
    writeFileSync(
      profile,
      JSON.stringify(profileToJson(await profileRecords(train, { tokenizer: TINY_MODEL, side: "output" }))),
    );
    await expect(
      generateAdapter(bank, { ...quick, data: profile, model: TINY_MODEL, finetune: 3, out: never }),
    ).rejects.toThrow(/target\.profile\.json: a profile has no train records to fine-tune on/);
    expect(existsSync(never)).toBe(false);
    const noted = await generateAdapter(bank, {
      ...quick,
      model: gguf,
      tokenizer: TINY_MODEL,
      out: join(tmp.dir, "gguf-default"),
    });
    expect(noted.finetune).toBeUndefined();
    expect(noted.notes.join("\n")).toMatch(/not fine-tuned: .*tiny\.gguf: fine-tuning trains on the CPU/);
  }, 180_000);

  it("a context beyond the model's is refused before any work, fine-tuned or not", async () => {
    const out = join(tmp.dir, "too-long");
    for (const finetune of [undefined, 0]) {
      const phases: string[] = [];
      await expect(
        generateAdapter(bank, {
          data: TARGET,
          model: TINY_MODEL,
          context: 1024,
          ...(finetune === undefined ? {} : { finetune }),
          out,
          progress: (e) => phases.push(e.phase),
        }),
      ).rejects.toThrow(
        /tinystories-656k: sequences of 1024 tokens \(`context`\) exceed the model's context of 512/,
      );
      expect(phases).toEqual([]);
    }
    expect(existsSync(out)).toBe(false);
  });

  it("without a model takes the nearest adapter by output side and says so; a model llama.cpp cannot load is refused first", async () => {
    const out = join(tmp.dir, "gen-nomodel");
    const result = await generateAdapter(bank, { data: TARGET, out });
    expect(result.selection).toBeUndefined();
    expect(result.notes.join("\n")).toMatch(/no base model given .* nearest adapter by output-side js/);
    expect(result.notes.join("\n")).toMatch(/not fine-tuned: no base model given/);
    expect(result.weights[0]?.weight).toBe(1);
    const bogus = join(tmp.dir, "not-a-model.gguf");
    const error = await generateAdapter(bank, {
      data: TARGET,
      model: bogus,
      out: join(tmp.dir, "never"),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as Error).message).toContain(bogus);
    expect(existsSync(join(tmp.dir, "never"))).toBe(false);
    await expect(
      generateAdapter(bank, {
        data: TARGET,
        method: "normalized",
        select: "loss",
        out: join(tmp.dir, "never"),
      }),
    ).rejects.toThrow(/select loss picks its own candidates/);
    await expect(
      generateAdapter(bank, { data: TARGET, method: "neural", side: "output", out: join(tmp.dir, "never") }),
    ).rejects.toThrow(/neural weighting is trained on input \+ output distances/);
  });
});
