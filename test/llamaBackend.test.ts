import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfToGguf } from "../src/convert/hfToGguf.js";
import { peftToGguf } from "../src/convert/peftToGguf.js";
import type { LoramixError } from "../src/errors.js";
import { LlamaBackend } from "../src/eval/llamaBackend.js";
import { readGgufHeader, readGgufTensorF32 } from "../src/formats/ggufRead.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import { readSafetensorsF32 } from "./helpers/safetensors.js";
import { PEFT_FIXTURES, TINY_MODEL, tempDir } from "./helpers/shared.js";

// Model tests: llama.cpp on TinyStories-656K (2 layers, hidden 128, 8 heads, 4 KV heads, vocab 2048).
const CONFIG = JSON.parse(readFileSync(join(TINY_MODEL, "config.json"), "utf8")) as Record<string, number>;
const HIDDEN = CONFIG.hidden_size as number;
const N_HEAD = CONFIG.num_attention_heads as number;
const N_KV = CONFIG.num_key_value_heads as number;
const HEAD_DIM = HIDDEN / N_HEAD;
const N_LAYER = CONFIG.num_hidden_layers as number;
const VOCAB = CONFIG.vocab_size as number;
const FF = CONFIG.intermediate_size as number;

async function writeSafetensorsF32(
  path: string,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(
    path,
    Buffer.concat([
      len,
      Buffer.from(json),
      ...[...tensors.values()].map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    ]),
  );
}

/** Seeded uniform numbers in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

const PROJ = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];
const DIMS: Record<string, [number, number]> = {
  "self_attn.q_proj": [HIDDEN, N_HEAD * HEAD_DIM],
  "self_attn.k_proj": [HIDDEN, N_KV * HEAD_DIM],
  "self_attn.v_proj": [HIDDEN, N_KV * HEAD_DIM],
  "self_attn.o_proj": [N_HEAD * HEAD_DIM, HIDDEN],
  "mlp.gate_proj": [HIDDEN, FF],
  "mlp.up_proj": [HIDDEN, FF],
  "mlp.down_proj": [FF, HIDDEN],
};

interface Lora {
  r: number;
  alpha: number;
  rslora: boolean;
  /** module path (model.layers.N.<proj>) → A [r, in], B [out, r] */
  pairs: Map<string, { a: Float32Array; b: Float32Array; inF: number; outF: number }>;
}

function makeLora({
  r,
  alpha,
  rslora,
  seed,
  bScale,
}: {
  r: number;
  alpha: number;
  rslora: boolean;
  seed: number;
  bScale: number;
}): Lora {
  const rand = random(seed);
  const pairs: Lora["pairs"] = new Map();
  for (let l = 0; l < N_LAYER; l++) {
    for (const p of PROJ) {
      const [inF, outF] = DIMS[p] as [number, number];
      const a = Float32Array.from({ length: r * inF }, () => rand() * 0.3);
      const b = Float32Array.from({ length: outF * r }, () => rand() * bScale);
      pairs.set(`model.layers.${l}.${p}`, { a, b, inF, outF });
    }
  }
  return { r, alpha, rslora, pairs };
}

async function writePeft(dir: string, lora: Lora): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [m, { a, b, inF, outF }] of lora.pairs) {
    tensors.set(`base_model.model.${m}.lora_A.weight`, { shape: [lora.r, inF], data: a });
    tensors.set(`base_model.model.${m}.lora_B.weight`, { shape: [outF, lora.r], data: b });
  }
  await writeSafetensorsF32(join(dir, "adapter_model.safetensors"), tensors);
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "raincandy-u/TinyStories-656K",
    r: lora.r,
    lora_alpha: lora.alpha,
    use_rslora: lora.rslora,
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  };
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config));
}

/**
 * Reference forward pass of Hugging Face's LlamaForCausalLM in float64: RMSNorm, RoPE with
 * rotate_half, grouped-query causal attention, SiLU-gated MLP, tied embeddings. Returns the
 * natural log-probabilities of the token after `ids`.
 */
function referenceLogProbs(
  weights: Map<string, { data: Float32Array }>,
  ids: number[],
  lora?: Lora,
): Float64Array {
  const w = (name: string): Float32Array => {
    const t = weights.get(name);
    if (t === undefined) throw new Error(`missing ${name}`);
    return t.data;
  };
  const scale = lora ? (lora.rslora ? lora.alpha / Math.sqrt(lora.r) : lora.alpha / lora.r) : 0;
  /** y = W x (+ scale · B A x) for W [out, in]. */
  const linear = (module: string, x: Float64Array, outF: number, inF: number): Float64Array => {
    const W = w(`${module}.weight`);
    const y = new Float64Array(outF);
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += (W[o * inF + i] as number) * (x[i] as number);
      y[o] = s;
    }
    const pair = lora?.pairs.get(module);
    if (pair && lora) {
      const ax = new Float64Array(lora.r);
      for (let k = 0; k < lora.r; k++)
        for (let i = 0; i < inF; i++)
          ax[k] = (ax[k] as number) + (pair.a[k * inF + i] as number) * (x[i] as number);
      for (let o = 0; o < outF; o++) {
        let s = 0;
        for (let k = 0; k < lora.r; k++) s += (pair.b[o * lora.r + k] as number) * (ax[k] as number);
        y[o] = (y[o] as number) + scale * s;
      }
    }
    return y;
  };
  const rmsNorm = (x: Float64Array, weight: Float32Array): Float64Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + CONFIG.rms_norm_eps!);
    return x.map((v, i) => v * inv * (weight[i] as number));
  };
  const rope = (v: Float64Array, pos: number, heads: number): void => {
    const half = HEAD_DIM / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * CONFIG.rope_theta! ** (-(2 * i) / HEAD_DIM);
        const a = v[h * HEAD_DIM + i] as number;
        const b = v[h * HEAD_DIM + i + half] as number;
        v[h * HEAD_DIM + i] = a * Math.cos(angle) - b * Math.sin(angle);
        v[h * HEAD_DIM + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  };
  const embed = weights.has("model.embed_tokens.weight")
    ? w("model.embed_tokens.weight")
    : w("lm_head.weight");
  let hs = ids.map((id) => Float64Array.from(embed.subarray(id * HIDDEN, (id + 1) * HIDDEN)));
  for (let l = 0; l < N_LAYER; l++) {
    const p = `model.layers.${l}`;
    const xs = hs.map((h) => rmsNorm(h, w(`${p}.input_layernorm.weight`)));
    const qs = xs.map((x, t) => {
      const q = linear(`${p}.self_attn.q_proj`, x, N_HEAD * HEAD_DIM, HIDDEN);
      rope(q, t, N_HEAD);
      return q;
    });
    const ks = xs.map((x, t) => {
      const k = linear(`${p}.self_attn.k_proj`, x, N_KV * HEAD_DIM, HIDDEN);
      rope(k, t, N_KV);
      return k;
    });
    const vs = xs.map((x) => linear(`${p}.self_attn.v_proj`, x, N_KV * HEAD_DIM, HIDDEN));
    hs = hs.map((h, t) => {
      const attn = new Float64Array(N_HEAD * HEAD_DIM);
      for (let hd = 0; hd < N_HEAD; hd++) {
        const kv = Math.floor(hd / (N_HEAD / N_KV));
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < HEAD_DIM; i++)
            dot += (qs[t]![hd * HEAD_DIM + i] as number) * (ks[s]![kv * HEAD_DIM + i] as number);
          return dot / Math.sqrt(HEAD_DIM);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          for (let i = 0; i < HEAD_DIM; i++)
            attn[hd * HEAD_DIM + i] =
              (attn[hd * HEAD_DIM + i] as number) +
              ((e[s] as number) / z) * (vs[s]![kv * HEAD_DIM + i] as number);
        }
      }
      const o = linear(`${p}.self_attn.o_proj`, attn, HIDDEN, N_HEAD * HEAD_DIM);
      const h2 = h.map((v, i) => v + (o[i] as number));
      const x2 = rmsNorm(h2, w(`${p}.post_attention_layernorm.weight`));
      const g = linear(`${p}.mlp.gate_proj`, x2, FF, HIDDEN);
      const u = linear(`${p}.mlp.up_proj`, x2, FF, HIDDEN);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * (u[i] as number));
      const d = linear(`${p}.mlp.down_proj`, act, HIDDEN, FF);
      return h2.map((v, i) => v + (d[i] as number));
    });
  }
  const last = rmsNorm(hs[hs.length - 1] as Float64Array, w("model.norm.weight"));
  const logits = new Float64Array(VOCAB);
  for (let v = 0; v < VOCAB; v++) {
    let s = 0;
    for (let i = 0; i < HIDDEN; i++) s += (embed[v * HIDDEN + i] as number) * (last[i] as number);
    logits[v] = s;
  }
  const max = Math.max(...logits);
  const logZ = max + Math.log(logits.reduce((a, x) => a + Math.exp(x - max), 0));
  return logits.map((x) => x - logZ);
}

function maxDiffOverLikelyTokens(
  ours: Float64Array,
  ref: Float64Array,
): { maxDiff: number; compared: number } {
  let maxDiff = 0;
  let compared = 0;
  for (let v = 0; v < ref.length; v++) {
    // Tokens with probability below ~1e-9 are compared too, unless llama.cpp's float32 underflowed.
    if ((ref[v] as number) < -20) continue;
    compared++;
    maxDiff = Math.max(maxDiff, Math.abs((ours[v] as number) - (ref[v] as number)));
  }
  return { maxDiff, compared };
}

describe("GGUF conversion of TinyStories-656K and the llama.cpp backend", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let gguf: string;
  let backend: LlamaBackend;
  const weights = readSafetensorsF32(join(TINY_MODEL, "model.safetensors"));

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    gguf = join(dir, "tiny.gguf");
    await hfToGguf({ modelDir: TINY_MODEL, out: gguf });
    backend = await LlamaBackend.load({
      model: gguf,
      tokenizer: TINY_MODEL,
      contextSize: 512,
      kvCache: "f32",
    });
  }, 60_000);
  afterAll(async () => {
    await backend?.dispose();
    await cleanup();
  });

  it("checks a GGUF with loramix's reader before llama.cpp opens it", async () => {
    const bytes = readFileSync(gguf);
    const refused = async (name: string, data: Buffer, options: { adapter?: boolean } = {}) => {
      const file = join(dir, name);
      writeFileSync(file, data);
      const attempt = options.adapter
        ? backend.withAdapter(file)
        : LlamaBackend.load({ model: file, tokenizer: TINY_MODEL });
      const error = await attempt.then(
        () => undefined,
        (e: unknown) => e as LoramixError,
      );
      expect(error?.code).toBe("FORMAT");
      expect(error?.message.startsWith(`${file}: `)).toBe(true);
      expect(error?.message).not.toContain("\n");
      return error?.message as string;
    };
    // The token list's count (u64 after the key, the array type 9 and the item type 8), made absurd:
    // llama.cpp would try to allocate it.
    const key = bytes.indexOf("tokenizer.ggml.tokens");
    const huge = Buffer.from(bytes);
    huge.writeBigUInt64LE(1n << 40n, key + "tokenizer.ggml.tokens".length + 8);
    expect(await refused("huge-array.gguf", huge)).toMatch(/tokenizer\.ggml\.tokens/);
    // Cut short: the last tensors end beyond the file.
    expect(await refused("short.gguf", bytes.subarray(0, bytes.length - 100))).toMatch(/beyond the file/);
    // A model given as the adapter, and the other way round.
    expect(await refused("model-as-adapter.gguf", bytes, { adapter: true })).toMatch(
      /not a LoRA adapter GGUF/,
    );
  }, 60_000);

  it("peft-to-gguf refuses a fan_in_fan_out adapter before converting anything", async () => {
    const out = join(dir, "gpt2.gguf");
    await expect(
      peftToGguf({ adapterDir: join(PEFT_FIXTURES, "gpt2_tigrinya"), base: gguf, out }),
    ).rejects.toThrow(
      /fan_in_fan_out adapters \(GPT-2 style Conv1D\) cannot become a llama-architecture GGUF/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it("writes llama.cpp's keys and the Q/K permutation", async () => {
    const file = await readGgufHeader(gguf);
    const m = file.metadata;
    expect(m["general.architecture"]).toEqual({ type: "string", value: "llama" });
    expect(m["llama.block_count"]).toEqual({ type: "u32", value: N_LAYER });
    expect(m["llama.attention.head_count_kv"]).toEqual({ type: "u32", value: N_KV });
    expect(m["llama.rope.dimension_count"]).toEqual({ type: "u32", value: HEAD_DIM });
    expect(m["tokenizer.ggml.model"]).toEqual({ type: "string", value: "llama" });
    expect(m["tokenizer.ggml.bos_token_id"]).toEqual({ type: "u32", value: 1 });
    expect(m["tokenizer.ggml.eos_token_id"]).toEqual({ type: "u32", value: 2 });
    expect((m["tokenizer.ggml.tokens"]?.value as string[] | undefined)?.length).toBe(VOCAB);
    expect(file.tensors.map((t) => t.name)).not.toContain("output.weight");
    expect(file.tensors).toHaveLength(2 + 9 * N_LAYER);
    const k = await readGgufTensorF32(file, "blk.1.attn_k.weight");
    const hfK = weights.get("model.layers.1.self_attn.k_proj.weight")!.data;
    // Row 2j+i of each GGUF head is HF row i·(d/2)+j: check two rows of head 3.
    const row = (a: Float32Array, r: number) => Array.from(a.subarray(r * HIDDEN, (r + 1) * HIDDEN));
    expect(row(k, 3 * HEAD_DIM + 2 * 5 + 1)).toEqual(row(hfK, 3 * HEAD_DIM + HEAD_DIM / 2 + 5));
    expect(row(k, 3 * HEAD_DIM + 2 * 5)).toEqual(row(hfK, 3 * HEAD_DIM + 5));
    expect(await readGgufTensorF32(file, "blk.0.ffn_down.weight")).toEqual(
      weights.get("model.layers.0.mlp.down_proj.weight")!.data,
    );
  });

  it("continues a story coherently and deterministically", async () => {
    const a = await backend.generate("Once upon a time", { maxNewTokens: 60 });
    const b = await backend.generate("Once upon a time", { maxNewTokens: 60 });
    expect(b).toEqual(a);
    expect(a.tokens).toBeGreaterThan(10);
    const words = a.text.toLowerCase().match(/[a-z]+/g) ?? [];
    const common = [
      "the",
      "a",
      "was",
      "and",
      "he",
      "she",
      "to",
      "there",
      "little",
      "girl",
      "boy",
      "named",
      "day",
      "they",
      "her",
      "his",
    ];
    expect(words.filter((x) => common.includes(x)).length).toBeGreaterThanOrEqual(4);
    expect(a.text).toMatch(/^[\x20-\x7e\n]+$/);
  });

  it("gives llama.cpp's next-token log-probabilities equal to a reference forward pass", async () => {
    const tok = await loadTokenizer(TINY_MODEL);
    const ids = tok.encode("Once upon a time, there was a little", { bos: true });
    expect(ids[0]).toBe(1);
    const ref = referenceLogProbs(weights, ids);
    const ours = await backend.nextTokenLogProbs(ids);
    const { maxDiff, compared } = maxDiffOverLikelyTokens(ours, ref);
    expect(compared).toBeGreaterThan(100);
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it("applies a PEFT LoRA (converted on the fly) exactly as PEFT's alpha/r scaling does", async () => {
    const tok = await loadTokenizer(TINY_MODEL);
    const ids = tok.encode("The cat sat on the mat and", { bos: true });
    const lora = makeLora({ r: 4, alpha: 8, rslora: false, seed: 7, bScale: 0.05 });
    const peftDir = join(dir, "lora");
    await writePeft(peftDir, lora);
    const adapted = await backend.withAdapter(peftDir);
    const ref = referenceLogProbs(weights, ids, lora);
    const base = referenceLogProbs(weights, ids);
    const ours = await adapted.nextTokenLogProbs(ids);
    expect(maxDiffOverLikelyTokens(ours, ref).maxDiff).toBeLessThan(1e-3);
    // The adapter matters: its reference differs from the base by far more than the tolerance.
    expect(maxDiffOverLikelyTokens(base, ref).maxDiff).toBeGreaterThan(0.05);
  });

  it("matches rsLoRA scaling through the alpha·√r conversion", async () => {
    const tok = await loadTokenizer(TINY_MODEL);
    const ids = tok.encode("She was happy", { bos: true });
    const lora = makeLora({ r: 4, alpha: 3, rslora: true, seed: 11, bScale: 0.05 });
    const peftDir = join(dir, "rslora");
    await writePeft(peftDir, lora);
    const out = join(dir, "rslora.gguf");
    const result = await peftToGguf({ adapterDir: peftDir, base: gguf, out });
    expect(result.alpha).toBeCloseTo(3 * 2, 5);
    const file = await readGgufHeader(out);
    expect(file.metadata["general.type"]).toEqual({ type: "string", value: "adapter" });
    expect(file.metadata["adapter.type"]).toEqual({ type: "string", value: "lora" });
    expect(file.tensors.find((t) => t.name === "blk.0.attn_k.weight.lora_b")?.dims).toEqual([
      4,
      N_KV * HEAD_DIM,
    ]);
    expect(file.tensors.find((t) => t.name === "blk.0.attn_k.weight.lora_a")?.dims).toEqual([HIDDEN, 4]);
    const adapted = await backend.withAdapter(out);
    const ours = await adapted.nextTokenLogProbs(ids);
    expect(maxDiffOverLikelyTokens(ours, referenceLogProbs(weights, ids, lora)).maxDiff).toBeLessThan(1e-3);
  });

  it("a zero lora_B leaves generation unchanged; a random one changes it", async () => {
    const zeroDir = join(dir, "zero");
    await writePeft(zeroDir, makeLora({ r: 4, alpha: 8, rslora: false, seed: 3, bScale: 0 }));
    const randomDir = join(dir, "random");
    await writePeft(randomDir, makeLora({ r: 8, alpha: 16, rslora: false, seed: 5, bScale: 0.2 }));
    const prompt = "Once upon a time";
    const base = await backend.generate(prompt, { maxNewTokens: 40 });
    const zero = await (await backend.withAdapter(zeroDir)).generate(prompt, { maxNewTokens: 40 });
    const changed = await (await backend.withAdapter(randomDir)).generate(prompt, { maxNewTokens: 40 });
    expect(zero).toEqual(base);
    expect(changed.ids).not.toEqual(base.ids);
  });
});
