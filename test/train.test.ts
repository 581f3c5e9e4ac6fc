import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfToGguf } from "../src/convert/hfToGguf.js";
import { loadDataset } from "../src/datasets/load.js";
import type { DatasetRecord } from "../src/datasets/record.js";
import { LlamaBackend } from "../src/eval/llamaBackend.js";
import { numel } from "../src/formats/dtypes.js";
import { TRAIN_RECORD } from "../src/formats/fileNames.js";
import { loadAdapter, saveAdapter } from "../src/formats/peft.js";
import { SafetensorsReader } from "../src/formats/safetensors.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { evaluateLoss } from "../src/train/evaluateLoss.js";
import { buildExample, makeBatch } from "../src/train/examples.js";
import { finetuneLora, finetuneUnavailable, llamaParameters } from "../src/train/finetuneLora.js";
import { type LlamaWeights, loadLlamaWeights } from "../src/train/llamaWeights.js";
import { initLora, type LoraWeights } from "../src/train/lora.js";
import { TfjsLlama } from "../src/train/tfjsLlama.js";
import { trainLora } from "../src/train/trainLora.js";
import { TrainPool } from "../src/train/trainPool.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/* ---------- An independent float64 Llama forward pass, straight from the HF modeling code. ---------- */

type Mat = Float64Array;
const f64 = (a: Float32Array) => Float64Array.from(a);

/** x [n, inDim] · Wᵀ with W [out, inDim]. */
function linearRef(x: Mat, n: number, inDim: number, w: Mat, out: number): Mat {
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let k = 0; k < inDim; k++) s += (x[i * inDim + k] as number) * (w[o * inDim + k] as number);
      y[i * out + o] = s;
    }
  return y;
}

function rmsNormRef(x: Mat, n: number, d: number, w: Mat, eps: number): Mat {
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += (x[i * d + k] as number) ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    for (let k = 0; k < d; k++) y[i * d + k] = (x[i * d + k] as number) * r * (w[k] as number);
  }
  return y;
}

interface RefLora {
  scale: number;
  r: number;
  pairs: Map<string, { a: Mat; b: Mat }>;
}

/** Logits [T, V] of one unpadded sequence. */
function referenceLogits(w: LlamaWeights, ids: number[], lora: RefLora | null): Mat {
  const c = w.config;
  const T = ids.length;
  const H = c.nEmbd;
  const hd = c.headDim;
  const proj = (x: Mat, l: number, name: string, inDim: number, out: number) => {
    const layer = w.layers[l]!;
    const y = linearRef(x, T, inDim, f64(layer.proj[name as "q_proj"]), out);
    const p = lora?.pairs.get(`${l}.${name}`);
    if (lora && p) {
      const u = linearRef(x, T, inDim, p.a, lora.r);
      const d = linearRef(u, T, lora.r, p.b, out);
      for (let i = 0; i < y.length; i++) y[i] = (y[i] as number) + lora.scale * (d[i] as number);
    }
    return y;
  };
  const rope = (x: Mat, heads: number) => {
    for (let t = 0; t < T; t++)
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * hd;
        const orig = x.slice(o, o + hd);
        for (let i = 0; i < hd; i++) {
          const freq = c.ropeTheta ** (-(2 * (i % (hd / 2))) / hd);
          const rot = i < hd / 2 ? -(orig[i + hd / 2] as number) : (orig[i - hd / 2] as number);
          x[o + i] = (orig[i] as number) * Math.cos(t * freq) + rot * Math.sin(t * freq);
        }
      }
  };
  let h = new Float64Array(T * H);
  ids.forEach((id, t) => {
    for (let k = 0; k < H; k++) h[t * H + k] = w.embed[id * H + k] as number;
  });
  for (let l = 0; l < c.nLayer; l++) {
    const layer = w.layers[l]!;
    const x = rmsNormRef(h, T, H, f64(layer.inputNorm), c.rmsNormEps);
    const q = proj(x, l, "q_proj", H, c.nHead * hd);
    const k = proj(x, l, "k_proj", H, c.nHeadKv * hd);
    const v = proj(x, l, "v_proj", H, c.nHeadKv * hd);
    rope(q, c.nHead);
    rope(k, c.nHeadKv);
    const ctx = new Float64Array(T * c.nHead * hd);
    for (let head = 0; head < c.nHead; head++) {
      const kvh = Math.floor(head / (c.nHead / c.nHeadKv));
      for (let t = 0; t < T; t++) {
        const s = new Float64Array(t + 1);
        let max = -Infinity;
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let i = 0; i < hd; i++)
            dot +=
              (q[(t * c.nHead + head) * hd + i] as number) * (k[(j * c.nHeadKv + kvh) * hd + i] as number);
          s[j] = dot / Math.sqrt(hd);
          max = Math.max(max, s[j] as number);
        }
        let z = 0;
        for (let j = 0; j <= t; j++) z += s[j] = Math.exp((s[j] as number) - max);
        for (let j = 0; j <= t; j++)
          for (let i = 0; i < hd; i++)
            ctx[(t * c.nHead + head) * hd + i] =
              (ctx[(t * c.nHead + head) * hd + i] as number) +
              ((s[j] as number) / z) * (v[(j * c.nHeadKv + kvh) * hd + i] as number);
      }
    }
    const attn = proj(ctx, l, "o_proj", c.nHead * hd, H);
    for (let i = 0; i < h.length; i++) h[i] = (h[i] as number) + (attn[i] as number);
    const y = rmsNormRef(h, T, H, f64(layer.postAttentionNorm), c.rmsNormEps);
    const g = proj(y, l, "gate_proj", H, c.nFf);
    const u = proj(y, l, "up_proj", H, c.nFf);
    for (let i = 0; i < g.length; i++)
      g[i] = ((g[i] as number) / (1 + Math.exp(-(g[i] as number)))) * (u[i] as number);
    const down = proj(g, l, "down_proj", c.nFf, H);
    h = h.map((x, i) => x + (down[i] as number));
  }
  return linearRef(rmsNormRef(h, T, H, f64(w.norm), c.rmsNormEps), T, H, f64(w.lmHead), c.vocabSize);
}

/** Summed cross-entropy of ids[outputStart..] under the reference. */
function referenceLoss(w: LlamaWeights, ids: number[], outputStart: number, lora: RefLora | null): number {
  const V = w.config.vocabSize;
  const logits = referenceLogits(w, ids, lora);
  let loss = 0;
  for (let t = outputStart; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * V, t * V);
    const max = Math.max(...row);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    loss -= (row[ids[t]!] as number) - max - Math.log(z);
  }
  return loss;
}

function refLora(lora: LoraWeights): RefLora {
  return {
    scale: lora.scale,
    r: lora.r,
    pairs: new Map(lora.pairs.map((p) => [`${p.layer}.${p.proj}`, { a: f64(p.a), b: f64(p.b) }])),
  };
}

/** A LoRA with a non-zero B, so that both factors have gradients and change the output. */
function perturbedLora(weights: LlamaWeights): LoraWeights {
  const lora = initLora(weights.config, { seed: 7 });
  let s = 1;
  for (const p of lora.pairs)
    for (let i = 0; i < p.b.length; i++) {
      s = (s * 16807) % 2147483647;
      p.b[i] = (s / 2147483647 - 0.5) * 0.2;
    }
  return lora;
}

/* ---------- Tests ---------- */

let weights: LlamaWeights;
let tokenizer: Tokenizer;
let net: TfjsLlama;
let primeTrain: DatasetRecord[];

beforeAll(async () => {
  weights = await loadLlamaWeights(TINY_MODEL);
  tokenizer = await loadTokenizer(TINY_MODEL);
  net = await TfjsLlama.fromWeights(weights);
  primeTrain = (await loadDataset(join(SNI_DIR, "task092_check_prime_classification.json"))).splits.train;
});
afterAll(() => net?.dispose());

describe("weights", () => {
  it("reads the tied checkpoint, whose embedding is stored once as lm_head.weight", async () => {
    await using r = await SafetensorsReader.open(join(TINY_MODEL, "model.safetensors"));
    expect(r.header.tensors.has("model.embed_tokens.weight")).toBe(false);
    expect(weights.embed).toEqual(await r.readF32("lm_head.weight"));
    expect(weights.lmHead).toBe(weights.embed);
    expect(weights.layers).toHaveLength(2);
  });

  it("counts a model's parameters from config.json as its checkpoint stores them", async () => {
    await using r = await SafetensorsReader.open(join(TINY_MODEL, "model.safetensors"));
    const stored = [...r.header.tensors.values()].reduce((s, t) => s + numel(t.shape), 0);
    expect(llamaParameters(weights.config)).toBe(stored);
    // Untied embeddings add an output head of the same size.
    expect(llamaParameters({ ...weights.config, tieWordEmbeddings: false })).toBe(
      stored + weights.config.vocabSize * weights.config.nEmbd,
    );
    expect(await finetuneUnavailable(TINY_MODEL)).toBeNull();
  });
});

describe("forward pass", () => {
  const logitsOf = (ids: number[][], lora: LoraWeights | null) => {
    const examples = ids.map((s) => ({
      ids: Int32Array.from(s),
      outputStart: s.length - 1,
      promptDropped: 0,
      outputDropped: 0,
    }));
    const batch = makeBatch(examples);
    const inputs = net.batchInputs(batch);
    const binding = lora ? net.bindLora(lora) : null;
    const t = net.tf.tidy(() => net.logits(inputs, binding, 0, batch.length));
    const data = t.dataSync() as Float32Array;
    net.tf.dispose([t, inputs.ids, inputs.cos, inputs.sin, inputs.mask, ...(binding?.tensors ?? [])]);
    return { data, batch };
  };

  it("predicts TinyStories text far better than chance (base model, B = 0)", () => {
    const ids = tokenizer.encode("Once upon a time, there was a little girl named Lily. She liked to play.", {
      bos: true,
    });
    const { data } = logitsOf([ids], initLora(weights.config, { seed: 1 }));
    const V = weights.config.vocabSize;
    let nll = 0;
    let hits = 0;
    for (let t = 2; t < ids.length; t++) {
      const row = data.subarray((t - 1) * V, t * V);
      let best = 0;
      for (let i = 1; i < V; i++) if ((row[i] as number) > (row[best] as number)) best = i;
      if (best === ids[t]) hits++;
      const max = row[best] as number;
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      nll -= (row[ids[t]!] as number) - max - Math.log(z);
    }
    // Uniform guessing costs ln 2048 ≈ 7.6 nats per token and is right 1 time in 2048.
    expect(nll / (ids.length - 2)).toBeLessThan(4.5);
    expect(hits / (ids.length - 2)).toBeGreaterThan(0.4);
  });

  it("matches a float64 reference within 1e-3, with LoRA, padding and per-row positions", () => {
    const lora = perturbedLora(weights);
    const a = tokenizer.encode("The cat sat on the mat and looked at the sun.", { bos: true });
    const b = tokenizer.encode("Tom was happy.", { bos: true });
    const { data, batch } = logitsOf([a, b], lora);
    const V = weights.config.vocabSize;
    let worst = 0;
    [a, b].forEach((ids, row) => {
      const ref = referenceLogits(weights, ids, refLora(lora));
      const pad = batch.pads[row]!;
      for (let t = 0; t < ids.length; t++)
        for (let v = 0; v < V; v++)
          worst = Math.max(
            worst,
            Math.abs((data[(row * batch.length + pad + t) * V + v] as number) - (ref[t * V + v] as number)),
          );
    });
    expect(batch.pads[1]).toBeGreaterThan(0);
    expect(worst).toBeLessThan(1e-3);
  });

  it("has LoRA gradients that match central finite differences of the float64 reference", () => {
    const lora = perturbedLora(weights);
    const ids = tokenizer.encode("Lily saw a big dog. She was scared.", { bos: true });
    const outputStart = ids.length - 4;
    const example = { ids: Int32Array.from(ids), outputStart, promptDropped: 0, outputDropped: 0 };
    const batch = makeBatch([example]);
    const inputs = net.batchInputs(batch);
    const binding = net.bindLora(lora);
    const tf = net.tf;
    const { value, grads } = tf.tidy(() =>
      tf.valueAndGrads((...f) => net.outputLoss(inputs, batch, { ...binding, tensors: f }).mean)(
        binding.tensors,
      ),
    );
    const n = ids.length - outputStart;
    expect(value.dataSync()[0]).toBeCloseTo(referenceLoss(weights, ids, outputStart, refLora(lora)) / n, 4);
    // Layer 0's q_proj A (reaches the loss through both layers) and layer 1's v_proj B.
    const checks = [
      { pair: 0, factor: "a" as const, index: 37 },
      { pair: 5, factor: "b" as const, index: 11 },
    ];
    for (const { pair, factor, index } of checks) {
      const analytic = grads[2 * pair + (factor === "a" ? 0 : 1)]!.dataSync()[index] as number;
      const eps = 1e-4;
      const loss = (delta: number) => {
        const ref = refLora(lora);
        const p = [...ref.pairs.values()][pair]!;
        p[factor][index] = (p[factor][index] as number) + delta;
        return referenceLoss(weights, ids, outputStart, ref) / n;
      };
      const numeric = (loss(eps) - loss(-eps)) / (2 * eps);
      expect(Math.abs(numeric)).toBeGreaterThan(1e-4);
      expect(Math.abs(analytic - numeric)).toBeLessThan(1e-3 * Math.max(1, Math.abs(numeric)));
    }
    tf.dispose([value, ...grads, inputs.ids, inputs.cos, inputs.sin, inputs.mask, ...binding.tensors]);
  });
});

describe("examples", () => {
  it("cuts the prompt from the left at a character and the output from the right, keeping BOS", () => {
    const record = {
      input: "one two three four five six seven eight nine ten ".repeat(40),
      output: ["alpha beta gamma ".repeat(20)],
    };
    const output = tokenizer.encode(record.output[0]!);
    const e = buildExample(record, tokenizer, { context: 100, answerTokens: 16 })!;
    // Brute force: the longest suffix of the input whose tokens with BOS fit 100 − 16 = 84.
    let start = 0;
    while (tokenizer.encode(record.input.slice(start), { bos: true }).length > 84) start++;
    const prompt = tokenizer.encode(record.input.slice(start), { bos: true });
    expect(e.ids[0]).toBe(tokenizer.bosId);
    expect(e.outputStart).toBe(prompt.length);
    expect(e.outputStart).toBeLessThanOrEqual(84);
    expect([...e.ids.subarray(0, e.outputStart)]).toEqual(prompt);
    expect([...e.ids.subarray(e.outputStart)]).toEqual(output.slice(0, 16)); // no EOS: the answer was cut
    expect(e.ids.length).toBeLessThanOrEqual(100);
    expect(e.outputDropped).toBe(output.length - 16);
    expect(e.promptDropped).toBe(start);
    const short = buildExample({ input: "Is 7 prime?", output: ["Yes"] }, tokenizer)!;
    expect([...short.ids]).toEqual([
      ...tokenizer.encode("Is 7 prime?", { bos: true }),
      ...tokenizer.encode("Yes"),
      2,
    ]);
    expect(buildExample({ input: "x", output: [] }, tokenizer)).toBeNull();
  });

  it("draws A from one seeded kaiming-uniform stream, B zero", () => {
    const x = initLora(weights.config, { seed: 3 });
    const y = initLora(weights.config, { seed: 3 });
    const z = initLora(weights.config, { seed: 4 });
    expect(x.pairs.map((p) => p.a)).toEqual(y.pairs.map((p) => p.a));
    expect(x.pairs[0]!.a).not.toEqual(z.pairs[0]!.a);
    const bound = 1 / Math.sqrt(128);
    const all = x.pairs.flatMap((p) => [...p.a]);
    expect(Math.max(...all.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...all.map(Math.abs))).toBeGreaterThan(0.95 * bound);
    expect(x.pairs.every((p) => p.b.every((v) => v === 0))).toBe(true);
  });
});

/** Summed cross-entropy of an example's output tokens, each scored by llama.cpp from its prefix. */
async function llamaLoss(
  backend: Pick<LlamaBackend, "nextTokenLogProbs">,
  ex: { ids: Int32Array; outputStart: number },
): Promise<number> {
  const ids = Array.from(ex.ids);
  let loss = 0;
  for (let t = ex.outputStart; t < ids.length; t++)
    loss -= (await backend.nextTokenLogProbs(ids.slice(0, t)))[ids[t] as number] as number;
  return loss;
}

describe("training", () => {
  it("lowers the output loss on a real Super-NI task and writes a PEFT adapter", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const out = join(dir, "prime");
      const evalSet = primeTrain.slice(0, 24);
      const opts = {
        model: TINY_MODEL,
        records: primeTrain,
        steps: 40,
        batchSize: 4,
        lr: 3e-3,
        seed: 11,
        rule: { context: 128, answerTokens: 16 },
      };
      const result = await trainLora({ ...opts, out });
      expect(result.losses).toHaveLength(40);
      const before = await evaluateLoss({
        model: TINY_MODEL,
        records: evalSet,
        rule: { context: 128, answerTokens: 16 },
      });
      const after = await evaluateLoss({
        model: TINY_MODEL,
        adapter: out,
        records: evalSet,
        rule: { context: 128, answerTokens: 16 },
      });
      // Answers are "Yes"/"No" (+ EOS): the base model is far off; 40 steps must learn the format.
      expect(before.loss).toBeGreaterThan(4);
      expect(after.loss).toBeLessThan(before.loss - 2);
      expect(after.tokens).toBe(before.tokens);

      // The exported adapter, run by llama.cpp (PEFT dir → GGUF on the fly), gives the same loss on
      // the same token ids: what was trained is what users get in llama.cpp.
      const gguf = join(dir, "tiny.gguf");
      await hfToGguf({ modelDir: TINY_MODEL, out: gguf });
      const llama = await LlamaBackend.load({
        model: gguf,
        tokenizer: TINY_MODEL,
        contextSize: 256,
        kvCache: "f32",
      });
      try {
        const adapted = await llama.withAdapter(out);
        for (const ex of after.examples.slice(0, 4)) {
          expect(ex.tokens).toBeGreaterThan(0);
          expect(Math.abs((await llamaLoss(adapted, ex)) - ex.loss)).toBeLessThan(1e-4 * ex.tokens);
        }
        const ex0 = before.examples[0]!;
        expect(Math.abs((await llamaLoss(llama, ex0)) - ex0.loss)).toBeLessThan(1e-4 * ex0.tokens);
      } finally {
        await llama.dispose();
      }

      const adapter = await loadAdapter(out);
      expect(adapter.layout.r).toBe(8);
      expect(adapter.layout.alpha).toBe(16);
      expect(adapter.config.targetModules.sort()).toEqual(["k_proj", "q_proj", "v_proj"]);
      // The real path, so `AutoPeftModelForCausalLM.from_pretrained(out)` finds the base.
      expect(adapter.config.baseModel).toBe(TINY_MODEL);
      expect(adapter.dtype).toBe("F32");
      expect(adapter.layout.tensors).toHaveLength(12);
      const shapes = Object.fromEntries(adapter.layout.tensors.map((t) => [t.name, t.shape]));
      expect(shapes["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"]).toEqual([8, 128]);
      expect(shapes["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"]).toEqual([64, 8]);
      expect(shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]).toEqual([128, 8]);
      const config = JSON.parse(await readFile(join(out, "adapter_config.json"), "utf8"));
      expect(config).toMatchObject({
        peft_type: "LORA",
        task_type: "CAUSAL_LM",
        lora_dropout: 0,
        bias: "none",
        use_rslora: false,
      });
      expect(JSON.stringify(config)).not.toContain("seed");
      const sidecar = JSON.parse(await readFile(join(out, TRAIN_RECORD), "utf8"));
      expect(sidecar).toMatchObject({ initSeed: 11, steps: 40, batchSize: 4 });
      expect(sidecar.finalLoss).toBeCloseTo(result.finalLoss, 10);

      // Same seeds, same adapter bytes; the run is short, the determinism is the point.
      const again = { ...opts, steps: 3 };
      await trainLora({ ...again, out: join(dir, "a") });
      await trainLora({ ...again, out: join(dir, "b") });
      const bytes = (d: string) => readFile(join(dir, d, "adapter_model.safetensors"));
      expect((await bytes("a")).equals(await bytes("b"))).toBe(true);
      expect((await bytes("a")).equals(await bytes("prime"))).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it("finetuneLora starts from the given adapter, lowers its loss and gives back its tensors in its layout", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // An adapter of another task (small integers) fitted to Yes/No answers.
      const start = join(REPO, "testbed/adapters/task155_count_nouns_verbs");
      const records = primeTrain.filter((r) => r.output.length > 0).slice(0, 8);
      const rule = { context: 128, answerTokens: 16 };
      const before = await evaluateLoss({ model: TINY_MODEL, adapter: start, records, rule });
      const result = await finetuneLora({
        model: TINY_MODEL,
        adapter: start,
        records,
        steps: 6,
        batchSize: 8,
        lr: 4e-3,
        rule,
      });
      // One batch holds all 8 records, so the first step's loss is the start adapter's own loss.
      expect(Math.abs(result.firstLoss - before.loss)).toBeLessThan(1e-4);
      expect(result).toMatchObject({ steps: 6, batchSize: 8, examples: 8 });
      const adapter = await loadAdapter(start);
      expect(result.tensors.map((t) => [t.name, t.shape, t.dtype])).toEqual(
        adapter.layout.tensors.map((t) => [t.name, t.shape, adapter.dtype]),
      );
      const out = join(dir, "finetuned");
      await saveAdapter(out, { config: adapter.config.raw, tensors: result.tensors });
      const after = await evaluateLoss({ model: TINY_MODEL, adapter: out, records, rule });
      expect(after.loss).toBeLessThan(before.loss - 0.5);
    } finally {
      await cleanup();
    }
  }, 120_000);

  it("leaves no adapter behind when interrupted", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const controller = new AbortController();
      const out = join(dir, "never");
      const run = trainLora({
        model: TINY_MODEL,
        records: primeTrain,
        out,
        steps: 50,
        batchSize: 2,
        rule: { context: 64, answerTokens: 16 },
        signal: controller.signal,
        progress: (e) => {
          if (e.done === 2) controller.abort();
        },
      });
      await expect(run).rejects.toMatchObject({ code: "ABORTED" });
      expect(existsSync(out)).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it("trains on worker threads: two at once, the same bytes as in-process; abort and errors come back", async () => {
    const { dir, cleanup } = await tempDir();
    const pool = new TrainPool(2);
    try {
      const opts = {
        model: TINY_MODEL,
        records: primeTrain,
        steps: 3,
        batchSize: 2,
        rule: { context: 64, answerTokens: 16 },
        seed: 5,
      };
      await trainLora({ ...opts, out: join(dir, "main") });
      const results = await Promise.all([
        pool.train({ ...opts, out: join(dir, "w1") }),
        pool.train({ ...opts, out: join(dir, "w2"), seed: 6 }),
        // Queued behind the two running ones.
        pool.train({ ...opts, out: join(dir, "w3") }),
      ]);
      expect(results.map((r) => r.steps)).toEqual([3, 3, 3]);
      const bytes = (d: string) => readFile(join(dir, d, "adapter_model.safetensors"));
      expect((await bytes("w1")).equals(await bytes("main"))).toBe(true);
      expect((await bytes("w3")).equals(await bytes("main"))).toBe(true);
      expect((await bytes("w2")).equals(await bytes("main"))).toBe(false);

      await expect(pool.train({ ...opts, out: join(dir, "bad"), steps: 0 })).rejects.toMatchObject({
        name: "LoramixError",
        code: "USAGE",
        message: "steps must be a positive integer, got 0",
      });
      const controller = new AbortController();
      const run = pool.train({ ...opts, steps: 400, out: join(dir, "never"), signal: controller.signal });
      setTimeout(() => controller.abort(), 1500);
      await expect(run).rejects.toMatchObject({ code: "ABORTED" });
      expect(existsSync(join(dir, "never"))).toBe(false);
      // The pool still works after an abort.
      await pool.train({ ...opts, out: join(dir, "after") });
      expect((await bytes("after")).equals(await bytes("main"))).toBe(true);
    } finally {
      await pool.close();
      await cleanup();
    }
  });
});
