import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaProjection,
  projectionShape,
  readLlamaConfig,
} from "../convert/llamaNames.js";
import { formatError, inputError } from "../errors.js";
import { numel } from "../formats/dtypes.js";
import { readSafetensorsHeader, SafetensorsReader } from "../formats/safetensors.js";

export interface LlamaLayerWeights {
  inputNorm: Float32Array;
  postAttentionNorm: Float32Array;
  /** Hugging Face layout [out, in]. */
  proj: Record<LlamaProjection, Float32Array>;
}

/** A Hugging Face LlamaForCausalLM checkpoint in float32, as plain arrays. */
export interface LlamaWeights {
  dir: string;
  config: LlamaConfig;
  /** [vocab, hidden]; also the output head when embeddings are tied. */
  embed: Float32Array;
  /** [vocab, hidden]. */
  lmHead: Float32Array;
  norm: Float32Array;
  layers: LlamaLayerWeights[];
}

const ATTENTION_PROJECTIONS: ReadonlySet<LlamaProjection> = new Set(["q_proj", "k_proj", "v_proj", "o_proj"]);

/** Hugging Face module path, e.g. `model.layers.0.self_attn.q_proj`. */
export function projectionModule(layer: number, proj: LlamaProjection): string {
  return `model.layers.${layer}.${ATTENTION_PROJECTIONS.has(proj) ? "self_attn" : "mlp"}.${proj}`;
}

/**
 * Loads `model.safetensors` (or the shards named by `model.safetensors.index.json`) of a Hugging Face
 * Llama directory. Every tensor's shape is checked against config.json before it is read.
 */
export async function loadLlamaWeights(dir: string): Promise<LlamaWeights> {
  dir = resolve(dir);
  const config = await readLlamaConfig(dir);
  if (config.ropeScaling !== null)
    throw formatError(config.file, "rope_scaling is not supported by the trainer");
  const shardOf = await tensorFiles(dir);
  const readers = new Map<string, SafetensorsReader>();
  try {
    const read = async (name: string, shape: number[]): Promise<Float32Array> => {
      const file = shardOf(name);
      if (file === undefined) throw formatError(join(dir, "model.safetensors"), `no tensor "${name}"`);
      let reader = readers.get(file);
      if (!reader) {
        reader = await SafetensorsReader.open(file);
        readers.set(file, reader);
      }
      const info = reader.header.tensors.get(name);
      if (!info) throw formatError(file, `no tensor "${name}"`);
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw formatError(
          file,
          `tensor "${name}" has shape ${JSON.stringify(info.shape)}, config.json implies ${JSON.stringify(shape)}`,
        );
      }
      return reader.readF32(name, new Float32Array(numel(shape)));
    };
    const { nEmbd, vocabSize } = config;
    // With tied embeddings, checkpoints store either name once (transformers drops the duplicate).
    const embedName =
      config.tieWordEmbeddings && shardOf("model.embed_tokens.weight") === undefined
        ? "lm_head.weight"
        : "model.embed_tokens.weight";
    const embed = await read(embedName, [vocabSize, nEmbd]);
    const lmHead = config.tieWordEmbeddings ? embed : await read("lm_head.weight", [vocabSize, nEmbd]);
    const norm = await read("model.norm.weight", [nEmbd]);
    const layers: LlamaLayerWeights[] = [];
    for (let l = 0; l < config.nLayer; l++) {
      const proj = {} as Record<LlamaProjection, Float32Array>;
      for (const p of LLAMA_PROJECTIONS) {
        proj[p] = await read(`${projectionModule(l, p)}.weight`, projectionShape(config, p));
      }
      layers.push({
        inputNorm: await read(`model.layers.${l}.input_layernorm.weight`, [nEmbd]),
        postAttentionNorm: await read(`model.layers.${l}.post_attention_layernorm.weight`, [nEmbd]),
        proj,
      });
    }
    return { dir, config, embed, lmHead, norm, layers };
  } finally {
    for (const r of readers.values()) await r.close();
  }
}

/** Which file holds each tensor: the single model.safetensors, or the shards of its index. */
async function tensorFiles(dir: string): Promise<(name: string) => string | undefined> {
  const single = join(dir, "model.safetensors");
  if (existsSync(single)) {
    const { tensors } = await readSafetensorsHeader(single);
    return (name) => (tensors.has(name) ? single : undefined);
  }
  const indexFile = join(dir, "model.safetensors.index.json");
  if (!existsSync(indexFile)) throw inputError(dir, "no model.safetensors (or model.safetensors.index.json)");
  let map: unknown;
  try {
    map = (JSON.parse(await readFile(indexFile, "utf8")) as { weight_map?: unknown }).weight_map;
  } catch (error) {
    throw formatError(indexFile, `not valid JSON: ${(error as Error).message}`, error);
  }
  if (typeof map !== "object" || map === null) throw formatError(indexFile, 'no "weight_map" object');
  const weightMap = map as Record<string, unknown>;
  return (name) => {
    const shard = weightMap[name];
    if (typeof shard !== "string") return undefined;
    if (shard.includes("/") || shard.includes("\\") || shard.startsWith("."))
      throw formatError(indexFile, `shard name "${shard}" is not a plain file name`);
    return join(dir, shard);
  };
}
