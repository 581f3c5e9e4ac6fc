import { resolve } from "node:path";
import { llamaHyperparameters, TOKEN_TYPE } from "../convert/hfToGguf.js";
import { ggufTensorName } from "../convert/llamaNames.js";
import { usageError } from "../errors.js";
import { f32ToF16 } from "../formats/dtypes.js";
import { type GgufMetadata, type GgufTensorToWrite, ggufTensorBytes, writeGguf } from "../formats/gguf.js";
import type { LlamaConfig } from "../formats/llamaConfig.js";
import { readSentencePieceModel } from "../tokenizers/sentencepieceModel.js";
import type { ProgressSink } from "../util/progress.js";
import { streamSeed } from "./random.js";

/** A real model's shape: what fixes its compute and memory, whatever its weights. */
export interface SynthModelShape {
  /** The real model of this shape, named in the file beside the word synthetic. */
  like: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  contextLength: number;
  ropeTheta: number;
}

export const SYNTH_MODEL_SHAPES = {
  /** Mistral-7B-Instruct-v0.2, the base of Lots-of-LoRAs: 7.24B parameters, 3.9 GB in Q4_0. */
  "mistral-7b": {
    like: "mistralai/Mistral-7B-Instruct-v0.2",
    nLayer: 32,
    nEmbd: 4096,
    nFf: 14336,
    nHead: 32,
    nHeadKv: 8,
    contextLength: 32768,
    ropeTheta: 1e6,
  },
  /** TinyLlama-1.1B (Llama 2's 32000-piece vocabulary): 1.1B parameters, 0.6 GB in Q4_0, for quick runs. */
  "tinyllama-1b": {
    like: "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    nLayer: 22,
    nEmbd: 2048,
    nFf: 5632,
    nHead: 32,
    nHeadKv: 4,
    contextLength: 2048,
    ropeTheta: 1e4,
  },
  /** Mistral's structure at test size: 2 layers, hidden 64, 4 heads of 16, 2 kv heads. */
  tiny: {
    like: "a test model",
    nLayer: 2,
    nEmbd: 64,
    nFf: 128,
    nHead: 4,
    nHeadKv: 2,
    contextLength: 1024,
    ropeTheta: 1e6,
  },
} satisfies Record<string, SynthModelShape>;

export type SynthModelShapeName = keyof typeof SYNTH_MODEL_SHAPES;

/** The GGUF key that marks a file loramix wrote with random weights; `synthModelNote` reads it. */
export const SYNTHETIC_MODEL_KEY = "loramix.synthetic";

/** Q4_0: an f16 scale and 32 four-bit values (q − 8) per block of 18 bytes. */
const Q4_BLOCK = 32;
const Q4_BYTES = 18;
/** The standard deviation of (q − 8) for q uniform on 0..15. */
const Q4_STD = Math.sqrt((16 * 16 - 1) / 12);

export interface SynthModelResult {
  out: string;
  parameters: number;
  bytes: number;
  seconds: number;
}

/**
 * Writes a GGUF of a real model's shape with seeded random weights (Q4_0 matrices, F32 norms) and a
 * real vocabulary (a SentencePiece `tokenizer.model`, e.g. Mistral's): the compute and memory of
 * the real model, outputs that are noise. For timing and memory only, and marked as such in the
 * file (`general.name`, `general.description`, `loramix.synthetic`), so it is never taken for a
 * real model. Weights scale as 1/√fan-in so activations stay finite through every layer.
 */
export async function synthModel({
  out,
  shape: shapeName,
  vocab,
  seed = 0,
  signal,
  progress,
}: {
  out: string;
  shape: SynthModelShapeName;
  /** A SentencePiece tokenizer.model: the GGUF's vocabulary (its tokenizer needs no tokenizer.json). */
  vocab: string;
  seed?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<SynthModelResult> {
  const shape: SynthModelShape | undefined = SYNTH_MODEL_SHAPES[shapeName];
  if (shape === undefined)
    throw usageError(`unknown shape "${shapeName}" (use ${Object.keys(SYNTH_MODEL_SHAPES).join(", ")})`);
  const started = performance.now();
  const pieces = await readSentencePieceModel(vocab);
  const config: LlamaConfig = {
    file: "(synthetic)",
    modelType: "llama",
    ...shape,
    headDim: shape.nEmbd / shape.nHead,
    vocabSize: pieces.length,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: false,
    ropeScaling: null,
    bosTokenId: pieces.findIndex((p) => p.piece === "<s>"),
    eosTokenId: pieces.findIndex((p) => p.piece === "</s>"),
    torchDtype: null,
  };
  const tensors = synthTensors(config, seed);
  const name = `loramix synthetic ${shapeName} (random weights, ${shape.like}'s shape)`;
  const metadata: GgufMetadata = {
    "general.architecture": { type: "string", value: "llama" },
    "general.type": { type: "string", value: "model" },
    "general.name": { type: "string", value: name },
    "general.description": {
      type: "string",
      value: `Written by loramix synth-model with seeded random weights (seed ${seed}): the compute of ${shape.like}, outputs that are noise. For timing and memory only.`,
    },
    // llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_0.
    "general.file_type": { type: "u32", value: 2 },
    "general.quantization_version": { type: "u32", value: 2 },
    [SYNTHETIC_MODEL_KEY]: { type: "bool", value: true },
    ...llamaHyperparameters(config),
    "tokenizer.ggml.model": { type: "string", value: "llama" },
    "tokenizer.ggml.pre": { type: "string", value: "default" },
    "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: pieces.map((p) => p.piece) },
    "tokenizer.ggml.scores": { type: "array", itemType: "f32", value: pieces.map((p) => p.score) },
    "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: pieces.map((p) => p.type) },
    "tokenizer.ggml.add_bos_token": { type: "bool", value: true },
    "tokenizer.ggml.add_eos_token": { type: "bool", value: false },
  };
  const unknown = pieces.findIndex((p) => p.type === TOKEN_TYPE.unknown);
  for (const [kind, id] of [
    ["bos", config.bosTokenId],
    ["eos", config.eosTokenId],
    ["unknown", unknown],
  ] as const) {
    if (id !== null && id >= 0) metadata[`tokenizer.ggml.${kind}_token_id`] = { type: "u32", value: id };
  }
  await writeGguf(out, { metadata, tensors, signal, progress });
  const bytes = tensors.reduce((s, t) => s + ggufTensorBytes(t.type, t.dims), 0);
  const parameters = tensors.reduce((s, t) => s + t.dims.reduce((a, b) => a * b, 1), 0);
  return { out: resolve(out), parameters, bytes, seconds: (performance.now() - started) / 1000 };
}

/** Every tensor of a Llama model of `c`'s sizes, in llama.cpp's order, under GGUF names. */
function synthTensors(c: LlamaConfig, seed: number): GgufTensorToWrite[] {
  const q = c.nHead * c.headDim;
  const kv = c.nHeadKv * c.headDim;
  // Hugging Face [out, in] shapes; GGUF dims are reversed.
  const matrices: [string, number, number][] = [["model.embed_tokens.weight", c.vocabSize, c.nEmbd]];
  const norms: string[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `model.layers.${i}`;
    norms.push(`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`);
    matrices.push(
      [`${p}.self_attn.q_proj.weight`, q, c.nEmbd],
      [`${p}.self_attn.k_proj.weight`, kv, c.nEmbd],
      [`${p}.self_attn.v_proj.weight`, kv, c.nEmbd],
      [`${p}.self_attn.o_proj.weight`, c.nEmbd, q],
      [`${p}.mlp.gate_proj.weight`, c.nFf, c.nEmbd],
      [`${p}.mlp.up_proj.weight`, c.nFf, c.nEmbd],
      [`${p}.mlp.down_proj.weight`, c.nEmbd, c.nFf],
    );
  }
  norms.push("model.norm.weight");
  matrices.push(["lm_head.weight", c.vocabSize, c.nEmbd]);
  const tensors: GgufTensorToWrite[] = matrices.map(([hf, rows, cols]) => ({
    name: ggufTensorName(hf) as string,
    type: "Q4_0" as const,
    dims: [cols, rows],
    // Embeddings are read, not multiplied: unit scale; matrices keep activations near unit size.
    blocks: () => q4Blocks(rows * cols, hf.includes("embed") ? 1 : 1 / Math.sqrt(cols), streamSeed(seed, hf)),
  }));
  for (const hf of norms) {
    tensors.push({
      name: ggufTensorName(hf) as string,
      type: "F32",
      dims: [c.nEmbd],
      data: () => new Float32Array(c.nEmbd).fill(1),
    });
  }
  const order = (n: string) => (n === "token_embd.weight" ? -1 : Number(/^blk\.(\d+)\./.exec(n)?.[1] ?? 1e9));
  return tensors.sort((a, b) => order(a.name) - order(b.name) || a.name.localeCompare(b.name));
}

/** `n` weights as Q4_0 blocks of standard deviation `std`: seeded xorshift nibbles under one f16 scale. */
function q4Blocks(n: number, std: number, seed: number): Uint8Array {
  const blocks = n / Q4_BLOCK;
  const out = new Uint8Array(blocks * Q4_BYTES);
  const scale = f32ToF16(std / Q4_STD);
  let x = seed >>> 0 || 1;
  for (let b = 0; b < blocks; b++) {
    const at = b * Q4_BYTES;
    out[at] = scale & 0xff;
    out[at + 1] = scale >>> 8;
    for (let k = 2; k < Q4_BYTES; k += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[at + k] = x & 0xff;
      out[at + k + 1] = (x >>> 8) & 0xff;
      out[at + k + 2] = (x >>> 16) & 0xff;
      out[at + k + 3] = x >>> 24;
    }
  }
  return out;
}
