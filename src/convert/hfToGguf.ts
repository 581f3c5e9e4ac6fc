import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { TOKENIZER_JSON } from "../formats/fileNames.js";
import { type GgufMetadata, type GgufTensorToWrite, type GgufWriteType, writeGguf } from "../formats/gguf.js";
import { HfCheckpoint } from "../formats/hfCheckpoint.js";
import { type LlamaConfig, readLlamaConfig } from "../formats/llamaConfig.js";
import { checkOutFile } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { ggufTensorName, permuteForRope } from "./llamaNames.js";
import { GGUF_OUTPUT_KEY, ggufOutput } from "./outputKey.js";

/** llama.cpp's `llama_token_type`. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** llama.cpp's `llama_ftype` for the whole file. */
const FILE_TYPE: Record<GgufWriteType, number> = { F32: 0, F16: 1 };

export interface HfToGgufOptions {
  /** A Hugging Face Llama/Mistral directory: config.json, tokenizer.json, model.safetensors (or sharded with an index). */
  modelDir: string;
  out: string;
  /** Type of the matrices; norms stay F32 as in llama.cpp. "auto": F32 for an F32 model, else F16. */
  outType?: "auto" | "f32" | "f16";
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface HfToGgufResult {
  out: string;
  tensors: number;
  metadataKeys: number;
  outType: GgufWriteType;
}

/**
 * Converts a Hugging Face Llama-architecture model to GGUF as llama.cpp's convert_hf_to_gguf.py
 * does (same keys, names, Q/K row permutation, tied embeddings without output.weight). Tensors
 * are read and written one at a time.
 */
export async function hfToGguf({
  modelDir,
  out,
  outType = "auto",
  signal,
  progress,
}: HfToGgufOptions): Promise<HfToGgufResult> {
  const dir = resolve(modelDir);
  await checkOutFile(out, ggufOutput("model"));
  const config = await readLlamaConfig(dir);
  const tokenizer = await llamaTokenizerMetadata(dir, config);
  const checkpoint = await HfCheckpoint.open(dir);
  try {
    const sources = checkpoint.tensors;
    const type: GgufWriteType =
      outType === "f32"
        ? "F32"
        : outType === "f16"
          ? "F16"
          : [...sources.values()].every((s) => s.info.dtype === "F32")
            ? "F32"
            : "F16";
    const tensors: GgufTensorToWrite[] = [];
    for (const [hfName, { reader, info }] of sources) {
      const { shape } = info;
      let name: string | null;
      try {
        name = ggufTensorName(hfName);
      } catch {
        throw formatError(reader.header.path, `tensor "${hfName}" is not part of a Llama model`);
      }
      if (name === null) continue;
      if (name === "output.weight" && config.tieWordEmbeddings) {
        // Tied checkpoints are often saved with only lm_head.weight; it is then the embedding.
        if (sources.has("model.embed_tokens.weight")) continue;
        name = "token_embd.weight";
      }
      const expected = expectedShape(name, config);
      if (expected === undefined || expected.join(",") !== shape.join(",")) {
        throw formatError(
          reader.header.path,
          `tensor "${hfName}" has shape [${shape}], config.json implies [${expected ?? "?"}]`,
        );
      }
      const rows = shape[0] as number;
      const heads = name.endsWith("attn_q.weight")
        ? config.nHead
        : name.endsWith("attn_k.weight")
          ? config.nHeadKv
          : 0;
      tensors.push({
        name,
        type: shape.length === 1 ? "F32" : type,
        dims: [...shape].reverse(),
        data: async () => {
          const values = await reader.readF32(hfName);
          return heads > 0 ? permuteForRope(values, rows, heads) : values;
        },
      });
    }
    const have = new Set(tensors.map((t) => t.name));
    for (const name of requiredTensors(config)) {
      if (!have.has(name)) throw inputError(dir, `model has no weight for GGUF tensor "${name}"`);
    }
    tensors.sort((a, b) => tensorOrder(a.name) - tensorOrder(b.name) || a.name.localeCompare(b.name));
    const metadata: GgufMetadata = {
      "general.architecture": { type: "string", value: "llama" },
      "general.type": { type: "string", value: "model" },
      "general.name": { type: "string", value: basename(dir) },
      "general.file_type": { type: "u32", value: FILE_TYPE[type] },
      "general.quantization_version": { type: "u32", value: 2 },
      [GGUF_OUTPUT_KEY]: { type: "string", value: "model" },
      ...llamaHyperparameters(config),
      ...tokenizer,
    };
    await writeGguf(out, { metadata, tensors, signal, progress });
    return { out, tensors: tensors.length, metadataKeys: Object.keys(metadata).length, outType: type };
  } finally {
    await checkpoint.close();
  }
}

/** The `llama.*` keys of a base model, as set by convert_hf_to_gguf.py's LlamaModel. */
export function llamaHyperparameters(c: LlamaConfig): GgufMetadata {
  const m: GgufMetadata = {
    "llama.block_count": { type: "u32", value: c.nLayer },
    "llama.context_length": { type: "u32", value: c.contextLength },
    "llama.embedding_length": { type: "u32", value: c.nEmbd },
    "llama.feed_forward_length": { type: "u32", value: c.nFf },
    "llama.attention.head_count": { type: "u32", value: c.nHead },
    "llama.attention.head_count_kv": { type: "u32", value: c.nHeadKv },
    "llama.rope.freq_base": { type: "f32", value: Math.fround(c.ropeTheta) },
    "llama.attention.layer_norm_rms_epsilon": { type: "f32", value: Math.fround(c.rmsNormEps) },
    "llama.vocab_size": { type: "u32", value: c.vocabSize },
    "llama.rope.dimension_count": { type: "u32", value: c.headDim },
  };
  if (c.headDim !== c.nEmbd / c.nHead) {
    m["llama.attention.key_length"] = { type: "u32", value: c.headDim };
    m["llama.attention.value_length"] = { type: "u32", value: c.headDim };
  }
  if (c.ropeScaling !== null) {
    m["llama.rope.scaling.type"] = { type: "string", value: c.ropeScaling.type };
    m["llama.rope.scaling.factor"] = { type: "f32", value: Math.fround(c.ropeScaling.factor) };
  }
  return m;
}

function requiredTensors(c: LlamaConfig): string[] {
  const names = ["token_embd.weight", "output_norm.weight"];
  if (!c.tieWordEmbeddings) names.push("output.weight");
  for (let i = 0; i < c.nLayer; i++) {
    for (const p of [
      "attn_norm",
      "attn_q",
      "attn_k",
      "attn_v",
      "attn_output",
      "ffn_norm",
      "ffn_gate",
      "ffn_up",
      "ffn_down",
    ]) {
      names.push(`blk.${i}.${p}.weight`);
    }
  }
  return names;
}

/** Hugging Face shape ([out, in]) that config.json implies for a GGUF tensor. */
function expectedShape(name: string, c: LlamaConfig): number[] | undefined {
  const q = c.nHead * c.headDim;
  const kv = c.nHeadKv * c.headDim;
  const m = /^blk\.(\d+)\.(.+)\.weight$/.exec(name);
  if (m === null) {
    if (name === "token_embd.weight" || name === "output.weight") return [c.vocabSize, c.nEmbd];
    if (name === "output_norm.weight") return [c.nEmbd];
    return undefined;
  }
  if (Number(m[1]) >= c.nLayer) return undefined;
  const shapes: Record<string, number[]> = {
    attn_norm: [c.nEmbd],
    ffn_norm: [c.nEmbd],
    attn_q: [q, c.nEmbd],
    attn_k: [kv, c.nEmbd],
    attn_v: [kv, c.nEmbd],
    attn_output: [c.nEmbd, q],
    ffn_gate: [c.nFf, c.nEmbd],
    ffn_up: [c.nFf, c.nEmbd],
    ffn_down: [c.nEmbd, c.nFf],
  };
  return shapes[m[2] as string];
}

function tensorOrder(name: string): number {
  if (name === "token_embd.weight") return -1;
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

type Json = Record<string, unknown>;

/**
 * Tokenizer metadata for a Llama-style BPE tokenizer.json (byte_fallback, "▁" for spaces), which
 * llama.cpp runs with its SentencePiece tokenizer ("llama"): tokens in id order, types (BYTE for
 * `<0xXX>`, CONTROL for special tokens, USER_DEFINED for other added tokens), and scores.
 *
 * Scores differ from convert_hf_to_gguf.py on purpose: its LlamaHfVocab writes -1000 for every
 * token, which makes llama.cpp's SentencePiece merge order arbitrary. Here a token's score is
 * minus the rank of the BPE merge that creates it, so llama.cpp merges in BPE order and, except
 * for rare ambiguous splits, tokenizes as the Hugging Face tokenizer does.
 */
export async function llamaTokenizerMetadata(dir: string, config: LlamaConfig): Promise<GgufMetadata> {
  const file = join(dir, TOKENIZER_JSON);
  if (!existsSync(file)) throw inputError(dir, "no tokenizer.json (needed for the GGUF vocabulary)");
  let json: Json;
  try {
    json = JSON.parse(await readFile(file, "utf8")) as Json;
  } catch (error) {
    throw formatError(file, `not valid JSON: ${(error as Error).message}`, error);
  }
  const model = json.model as Json | undefined;
  const decoder = json.decoder as Json | undefined;
  if (model?.type !== "BPE" || model.byte_fallback !== true || decoder?.type !== "Sequence") {
    throw formatError(
      file,
      "only Llama-style BPE tokenizers (byte_fallback, SentencePiece spaces) are converted",
    );
  }
  const vocab = model.vocab as Record<string, number> | undefined;
  if (typeof vocab !== "object" || vocab === null) throw formatError(file, "model.vocab is missing");
  const tokens: (string | undefined)[] = new Array(config.vocabSize);
  const put = (text: string, id: unknown) => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0)
      throw formatError(file, `token ${JSON.stringify(text)} has id ${id}`);
    if (id >= config.vocabSize)
      throw formatError(file, `token id ${id} is beyond config.json's vocab_size ${config.vocabSize}`);
    tokens[id] = text;
  };
  for (const [text, id] of Object.entries(vocab)) put(text, id);
  const special = new Set<number>();
  const added = new Set<number>();
  for (const t of (json.added_tokens as Json[] | undefined) ?? []) {
    put(String(t.content), t.id);
    added.add(t.id as number);
    if (t.special === true) special.add(t.id as number);
  }
  const score = new Float64Array(config.vocabSize);
  const merges = (model.merges as unknown[] | undefined) ?? [];
  const idOf = new Map<string, number>(Object.entries(vocab));
  merges.forEach((merge, rank) => {
    const pair = Array.isArray(merge) ? merge : typeof merge === "string" ? merge.split(" ") : [];
    const id = idOf.get(pair.join(""));
    if (id !== undefined && score[id] === 0) score[id] = -(rank + 1);
  });
  const texts: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  for (let id = 0; id < config.vocabSize; id++) {
    const text = tokens[id];
    if (text === undefined) {
      texts.push(`[PAD${id}]`);
      scores.push(-1000);
      types.push(TOKEN_TYPE.unused);
      continue;
    }
    texts.push(text);
    scores.push(score[id] as number);
    types.push(
      /^<0x[0-9A-Fa-f]{2}>$/.test(text)
        ? TOKEN_TYPE.byte
        : special.has(id)
          ? TOKEN_TYPE.control
          : added.has(id)
            ? TOKEN_TYPE.userDefined
            : TOKEN_TYPE.normal,
    );
  }
  const meta: GgufMetadata = {
    "tokenizer.ggml.model": { type: "string", value: "llama" },
    "tokenizer.ggml.pre": { type: "string", value: "default" },
    "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: texts },
    "tokenizer.ggml.scores": { type: "array", itemType: "f32", value: scores },
    "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: types },
  };
  const tokConfigFile = join(dir, "tokenizer_config.json");
  let tokConfig: Json = {};
  if (existsSync(tokConfigFile)) {
    try {
      tokConfig = JSON.parse(await readFile(tokConfigFile, "utf8")) as Json;
    } catch (error) {
      throw formatError(tokConfigFile, `not valid JSON: ${(error as Error).message}`, error);
    }
  }
  const idOfAny = (t: unknown): number | undefined => {
    const content =
      typeof t === "string" ? t : typeof t === "object" && t !== null ? (t as Json).content : undefined;
    if (typeof content !== "string") return undefined;
    const i = texts.indexOf(content);
    return i >= 0 ? i : undefined;
  };
  const specials: [string, number | null | undefined][] = [
    ["bos", idOfAny(tokConfig.bos_token) ?? config.bosTokenId],
    ["eos", idOfAny(tokConfig.eos_token) ?? config.eosTokenId],
    ["unknown", idOfAny(tokConfig.unk_token) ?? idOfAny(model.unk_token)],
    ["padding", idOfAny(tokConfig.pad_token)],
  ];
  for (const [kind, id] of specials) {
    if (id != null) meta[`tokenizer.ggml.${kind}_token_id`] = { type: "u32", value: id };
  }
  meta["tokenizer.ggml.add_bos_token"] = { type: "bool", value: tokConfig.add_bos_token !== false };
  meta["tokenizer.ggml.add_eos_token"] = { type: "bool", value: tokConfig.add_eos_token === true };
  return meta;
}
