import { resolve } from "node:path";
import { formatError } from "../errors.js";
import { HfCheckpoint } from "../formats/hfCheckpoint.js";
import {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaProjection,
  projectionShape,
  readLlamaConfig,
} from "../formats/llamaConfig.js";

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
  const checkpoint = await HfCheckpoint.open(dir);
  try {
    const { nEmbd, vocabSize } = config;
    // With tied embeddings, checkpoints store either name once (transformers drops the duplicate).
    const embedName =
      config.tieWordEmbeddings && !checkpoint.has("model.embed_tokens.weight")
        ? "lm_head.weight"
        : "model.embed_tokens.weight";
    const embed = await checkpoint.readF32(embedName, [vocabSize, nEmbd]);
    const lmHead = config.tieWordEmbeddings
      ? embed
      : await checkpoint.readF32("lm_head.weight", [vocabSize, nEmbd]);
    const norm = await checkpoint.readF32("model.norm.weight", [nEmbd]);
    const layers: LlamaLayerWeights[] = [];
    for (let l = 0; l < config.nLayer; l++) {
      const proj = {} as Record<LlamaProjection, Float32Array>;
      for (const p of LLAMA_PROJECTIONS) {
        proj[p] = await checkpoint.readF32(`${projectionModule(l, p)}.weight`, projectionShape(config, p));
      }
      layers.push({
        inputNorm: await checkpoint.readF32(`model.layers.${l}.input_layernorm.weight`, [nEmbd]),
        postAttentionNorm: await checkpoint.readF32(`model.layers.${l}.post_attention_layernorm.weight`, [
          nEmbd,
        ]),
        proj,
      });
    }
    return { dir, config, embed, lmHead, norm, layers };
  } finally {
    await checkpoint.close();
  }
}
