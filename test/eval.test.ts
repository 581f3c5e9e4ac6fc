import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatasetRecord, loadDataset } from "../src/datasets/load.js";
import type { InferenceBackend } from "../src/eval/backend.js";
import { openBackend } from "../src/eval/backends.js";
import { cutAtEndText } from "../src/eval/endText.js";
import { type EvalMetrics, type EvalRecord, evaluate } from "../src/eval/evaluate.js";
import { exactMatch, rougeLMax } from "../src/eval/metrics.js";
import { saveAdapter } from "../src/formats/peft.js";
import { sendCompletion, startFakeOpenAI } from "./helpers/fakeOpenAI.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const run = promisify(execFile);

/** A real Super-NI task whose prompts are short for TinyStories' 2048-token vocabulary (≤ 234 tokens). */
const TASK = join(SNI_DIR, "task1146_country_capital.json");
/** Prompts of several hundred tokens: longer than a small context. */
const LONG_TASK = join(SNI_DIR, "task195_sentiment140_classification.json");
const LIMIT = 4;
const MAX_NEW = 12;

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir("loramix-eval-");
});
afterAll(async () => {
  await tmp.cleanup();
});

async function readOutputs(dir: string): Promise<{ records: EvalRecord[]; metrics: EvalMetrics }> {
  const lines = (await readFile(join(dir, "predictions.jsonl"), "utf8")).split("\n");
  expect(lines.pop()).toBe("");
  return {
    records: lines.map((l) => JSON.parse(l) as EvalRecord),
    metrics: JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as EvalMetrics,
  };
}

/** metrics.json must follow from predictions.jsonl: rescore each line, then mean and population std. */
function expectConsistent(records: EvalRecord[], metrics: EvalMetrics): void {
  expect(metrics.n).toBe(records.length);
  const rouge = records.map((r) => rougeLMax(r.prediction, r.references));
  const em = records.map((r) => exactMatch(r.prediction, r.references));
  expect(records.map((r) => r.rougeL)).toEqual(rouge);
  expect(records.map((r) => r.exactMatch)).toEqual(em);
  for (const [values, summary] of [
    [rouge, metrics.rougeL],
    [em, metrics.exactMatch],
  ] as const) {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
    expect(summary.mean).toBeCloseTo(mean, 12);
    expect(summary.std).toBeCloseTo(std, 12);
    expect(summary.n).toBe(values.length);
  }
  expect(metrics.generatedTokens).toBe(records.reduce((a, r) => a + r.tokens, 0));
  expect(metrics.recordsPerSecond).toBeCloseTo(metrics.n / metrics.seconds, 6);
}

/** A random LoRA on TinyStories' q/k/v, large enough to change greedy outputs. */
async function randomAdapter(dir: string): Promise<void> {
  const config = JSON.parse(readFileSync(join(TINY_MODEL, "config.json"), "utf8")) as Record<string, number>;
  const hidden = config.hidden_size as number;
  const kvOut = (hidden / (config.num_attention_heads as number)) * (config.num_key_value_heads as number);
  const r = 4;
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  const tensors = [];
  for (let layer = 0; layer < (config.num_hidden_layers as number); layer++) {
    for (const [proj, out] of [
      ["q_proj", hidden],
      ["k_proj", kvOut],
      ["v_proj", kvOut],
    ] as const) {
      const prefix = `base_model.model.model.layers.${layer}.self_attn.${proj}`;
      tensors.push(
        {
          name: `${prefix}.lora_A.weight`,
          dtype: "F32" as const,
          shape: [r, hidden],
          data: Float32Array.from({ length: r * hidden }, random),
        },
        {
          name: `${prefix}.lora_B.weight`,
          dtype: "F32" as const,
          shape: [out, r],
          data: Float32Array.from({ length: out * r }, random),
        },
      );
    }
  }
  await saveAdapter(dir, {
    config: {
      peft_type: "LORA",
      r,
      lora_alpha: 8,
      target_modules: ["q_proj", "k_proj", "v_proj"],
      base_model_name_or_path: TINY_MODEL,
      task_type: "CAUSAL_LM",
    },
    tensors,
  });
}

describe("evaluate with llama.cpp on TinyStories-656K", () => {
  let base: InferenceBackend;
  let baseRecords: EvalRecord[];
  beforeAll(async () => {
    base = await openBackend({ kind: "llama", model: TINY_MODEL });
  });
  afterAll(async () => {
    await base?.dispose();
  });

  it("writes predictions.jsonl and metrics.json that agree with each other", async () => {
    const out = join(tmp.dir, "base");
    const events: string[] = [];
    const result = await evaluate({
      backend: base,
      dataset: TASK,
      limit: LIMIT,
      maxNewTokens: MAX_NEW,
      out,
      model: TINY_MODEL,
      progress: (e) => events.push(`${e.done}/${e.total} ${e.unit}`),
    });
    const { records, metrics } = await readOutputs(out);
    expect(records).toEqual(result.records);
    expect(metrics).toEqual(result.metrics);
    expectConsistent(records, metrics);

    const test = (await loadDataset(TASK)).splits.test.slice(0, LIMIT);
    expect(records.map((r) => r.id)).toEqual(test.map((r) => r.id));
    expect(records.map((r) => r.references)).toEqual(test.map((r) => r.output));
    for (const r of records) {
      expect(r.tokens).toBeGreaterThan(0);
      expect(r.tokens).toBeLessThanOrEqual(MAX_NEW);
      expect(r.prediction.length).toBeGreaterThan(0);
    }
    expect(metrics).toMatchObject({
      model: TINY_MODEL,
      adapter: null,
      split: "test",
      n: LIMIT,
      maxNewTokens: MAX_NEW,
    });
    expect(metrics.backend).toMatch(/^llama\.cpp:/);
    expect(events[0]).toBe(`0/${LIMIT} records`);
    expect(events.at(-1)).toBe(`${LIMIT}/${LIMIT} records`);
    baseRecords = records;
  });

  it("gives the same greedy predictions with several records in flight", async () => {
    const { records } = await evaluate({
      backend: base,
      dataset: TASK,
      limit: LIMIT,
      maxNewTokens: MAX_NEW,
      concurrency: 3,
    });
    expect(records.map((r) => r.prediction)).toEqual(baseRecords.map((r) => r.prediction));
  });

  it("applies a PEFT adapter converted on the fly", async () => {
    const adapterDir = join(tmp.dir, "adapter");
    await randomAdapter(adapterDir);
    const backend = await openBackend({ kind: "llama", model: TINY_MODEL, adapter: adapterDir });
    try {
      const out = join(tmp.dir, "adapted");
      await evaluate({
        backend,
        dataset: TASK,
        limit: LIMIT,
        maxNewTokens: MAX_NEW,
        out,
        adapter: adapterDir,
      });
      const { records, metrics } = await readOutputs(out);
      expectConsistent(records, metrics);
      expect(metrics.adapter).toBe(adapterDir);
      expect(metrics.backend).toMatch(/\+adapter$/);
      expect(records.map((r) => r.prediction)).not.toEqual(baseRecords.map((r) => r.prediction));
    } finally {
      await backend.dispose();
    }
  });

  it("defaults the context to the model's trained context and warns above it", async () => {
    const config = JSON.parse(readFileSync(join(TINY_MODEL, "config.json"), "utf8")) as {
      max_position_embeddings: number;
    };
    expect(base.contextSize).toBe(config.max_position_embeddings);
    const warnings: string[] = [];
    const wide = await openBackend({
      kind: "llama",
      model: TINY_MODEL,
      contextSize: 1024,
      warn: (m) => warnings.push(m),
    });
    try {
      expect(wide.contextSize).toBe(1024);
      expect(warnings).toEqual([
        `${TINY_MODEL}: a context of 1024 tokens exceeds the 512 the model was trained with; positions beyond it give unreliable output`,
      ]);
    } finally {
      await wide.dispose();
    }
  });

  it("fits long prompts by the training rule (--truncate left) and refuses them with truncate none", async () => {
    const small = await openBackend({ kind: "llama", model: TINY_MODEL, contextSize: 64 });
    try {
      const long = (await loadDataset(LONG_TASK)).splits.test.slice(0, 3);
      const tokenizer = small.tokenizer!;
      for (const r of long) expect(tokenizer.encode(r.input, { bos: true }).length).toBeGreaterThan(64);
      const fitted = await evaluate({ backend: small, dataset: long, maxNewTokens: 8 });
      expect(fitted.metrics).toMatchObject({ truncate: "left", promptsCut: 3, endText: "<|end_story|>" });
      // Brute force: the longest suffix of each prompt whose ids with BOS fit 64 − 8 = 56 tokens.
      const suffixes = long.map((r) => {
        let start = 0;
        while (tokenizer.encode(r.input.slice(start), { bos: true }).length > 56) start++;
        return { ...r, input: r.input.slice(start) };
      });
      const manual = await evaluate({ backend: small, dataset: suffixes, maxNewTokens: 8, truncate: "none" });
      expect(fitted.records.map((r) => r.input)).toEqual(suffixes.map((r) => r.input));
      expect(fitted.records.map((r) => r.prediction)).toEqual(manual.records.map((r) => r.prediction));
      await expect(
        evaluate({ backend: small, dataset: long, maxNewTokens: 8, truncate: "none" }),
      ).rejects.toThrow(/more than the context size 64/);
    } finally {
      await small.dispose();
    }
  });

  it("refuses an empty split and bad options", async () => {
    await expect(evaluate({ backend: base, dataset: TASK, limit: 0 })).rejects.toThrow(
      "limit must be a positive integer, got 0",
    );
    await expect(evaluate({ backend: base, dataset: [] })).rejects.toThrow("no records to evaluate");
  });
});

describe("the end-text rule", () => {
  const END = "<|end_story|>";
  it("cuts a prediction at the end token written as text, and a trailing start of it at the token limit", () => {
    expect(cutAtEndText("Yes<|end_story|> Once upon", END, "length")).toBe("Yes");
    expect(cutAtEndText("No <|end_story|><|end_story|>", END, "eos")).toBe("No");
    expect(cutAtEndText("Positive<|end", END, "length")).toBe("Positive");
    expect(cutAtEndText("Positive<|end", END, "eos")).toBe("Positive<|end"); // stopped on its own: kept
    expect(cutAtEndText("a < b", END, "length")).toBe("a < b"); // one character is not a start of it
    expect(cutAtEndText("x <|", END, "length")).toBe("x");
    expect(cutAtEndText("<|end_story|>", END, "eos")).toBe("");
    expect(cutAtEndText("Yes<|end_story|>", null, "eos")).toBe("Yes<|end_story|>");
    // Then surrounding whitespace goes, as servers send " Yes" where llama.cpp writes "Yes".
    expect(cutAtEndText(" Yes\n", END, "eos")).toBe("Yes");
  });

  it("is applied before scoring and before predictions are written", async () => {
    const backend: InferenceBackend = {
      name: "scripted",
      endText: "</s>",
      generate: async () => ({ text: "Paris</s>Paris", tokens: 5, stoppedBy: "length" }),
      dispose: async () => {},
      [Symbol.asyncDispose]: async () => {},
    };
    const { records, metrics } = await evaluate({
      backend,
      dataset: [{ id: "a", input: "Capital of France?", output: ["Paris"] }],
    });
    expect(records[0]).toMatchObject({ prediction: "Paris", exactMatch: 1, rougeL: 1 });
    expect(metrics).toMatchObject({ endText: "</s>", truncate: "none", promptsCut: 0 });
  });
});

describe("evaluate on a dataset file", () => {
  it("streams it: keeps only the split's records and stops reading at the limit", async () => {
    const echo: InferenceBackend = {
      name: "echo",
      generate: async (prompt) => ({ text: prompt, tokens: 1, stoppedBy: "eos" }),
      dispose: async () => {},
      [Symbol.asyncDispose]: async () => {},
    };
    const rows = Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, input: `q${i}`, output: `q${i}` }));
    const file = join(tmp.dir, "stream.jsonl");
    // The last line is broken: a run that reads the whole file must fail on it.
    writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n{"id": "r200", "input": \n`);
    await expect(evaluate({ backend: echo, dataset: file })).rejects.toThrow(/stream\.jsonl.*line 201/);
    const { records } = await evaluate({ backend: echo, dataset: file, split: "valid", limit: 5 });
    // The same records as the whole file's valid split (SPEC §1's hash rule), in file order.
    const whole = file.replace(/\.jsonl$/, "-whole.jsonl");
    writeFileSync(whole, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
    const valid = (await loadDataset(whole)).splits.valid.slice(0, 5);
    expect(valid).toHaveLength(5);
    expect(records.map((r) => r.id)).toEqual(valid.map((r) => r.id));
    expect(records.every((r) => r.exactMatch === 1)).toBe(true);
  });
});

describe("evaluate through the OpenAI backend", () => {
  it("scores a fake server's answers and keeps record order", async () => {
    const test = (await loadDataset(TASK)).splits.test.slice(0, 6);
    const reference = (i: number) => (test[i] as DatasetRecord).output[0] as string;
    const input = (i: number) => (test[i] as DatasetRecord).input;
    // Record 0: a reference with different case and punctuation (EM 1, Rouge-L 1);
    // record 1: reference plus a word; the rest: an unrelated answer.
    const answers = new Map<string, string>([
      [input(0), ` ${reference(0).toUpperCase()}.`],
      [input(1), `${reference(1)} city`],
    ]);
    const server = await startFakeOpenAI(async (req, n, res) => {
      await new Promise((r) => setTimeout(r, 10 * (6 - n)));
      sendCompletion(res, answers.get(req.prompt) ?? "zzz qqq", 3);
    });
    try {
      const backend = await openBackend({
        kind: "openai",
        baseUrl: server.baseUrl,
        adapter: "/banks/task1146",
        concurrency: 3,
      });
      const out = join(tmp.dir, "openai");
      await evaluate({ backend, dataset: TASK, limit: 6, maxNewTokens: 5, concurrency: 3, out });
      const { records, metrics } = await readOutputs(out);
      expectConsistent(records, metrics);
      expect(server.requests.every((r) => r.model === "task1146" && r.max_tokens === 5)).toBe(true);
      expect(server.maxInFlight()).toBe(3);
      expect(records.map((r) => r.id)).toEqual(test.map((r) => r.id));
      // Three requests in flight finish out of order; each line still carries its place in the split.
      expect(records.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(records.map((r) => r.exactMatch)).toEqual([1, 0, 0, 0, 0, 0]);
      expect(records[0]?.rougeL).toBe(1);
      // Record 1: the reference's k tokens plus "city": LCS k, P = k/(k+1), R = 1, F = 2k/(2k+1).
      const k = reference(1)
        .split(/[^A-Za-z0-9]+/)
        .filter(Boolean).length;
      expect(records[1]?.rougeL).toBeCloseTo((2 * k) / (2 * k + 1), 12);
      expect(metrics.exactMatch.mean).toBeCloseTo(1 / 6, 15);
      expect(metrics.generatedTokens).toBe(18);
    } finally {
      await server.close();
    }
  });
});

describe("loramix eval", () => {
  const cli = (...args: string[]) =>
    run(process.execPath, ["--import", "tsx", join(REPO, "src/cli/main.ts"), "eval", ...args], { cwd: REPO });

  it("evaluates through a server and prints the scores", async () => {
    const server = await startFakeOpenAI((_req, _n, res) => sendCompletion(res, "Paris", 1));
    try {
      const out = join(tmp.dir, "cli");
      const onServer = [
        "--backend",
        "openai",
        "--base-url",
        server.baseUrl,
        "--model-name",
        "m",
        "--data",
        TASK,
      ];
      const { stdout, stderr } = await cli(...onServer, "--limit", "3", "--truncate", "none", "--out", out);
      const { records, metrics } = await readOutputs(out);
      expectConsistent(records, metrics);
      expect(metrics.n).toBe(3);
      expect(metrics.truncate).toBe("none");
      // The scores are the result (stdout); where the files went is a message (stderr).
      expect(stdout).toContain(
        `openai:m@${server.baseUrl} on 3 test records: Rouge-L ${metrics.rougeL.mean.toFixed(4)}`,
      );
      expect(stderr).toContain(`wrote ${join(out, "predictions.jsonl")}`);
      // The default --truncate left needs what this server does not say: the error names the options.
      const refused = await cli(...onServer, "--out", join(tmp.dir, "refused")).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect(refused).toMatchObject({
        code: 2,
        stderr: `loramix: openai:m@${server.baseUrl}: loramix does not know the model's tokenizer, so prompts cannot be fitted to the context: give --tokenizer (the model's tokenizer.json), or --truncate none\n`,
      });
    } finally {
      await server.close();
    }
  });

  it("rejects a bad option with exit code 2", async () => {
    const error = await cli("--backend", "vllm", "--data", TASK, "--out", tmp.dir).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(error).toMatchObject({
      code: 2,
      stderr: 'loramix: --backend must be one of llama, openai, got "vllm"\n',
    });
  });
});
