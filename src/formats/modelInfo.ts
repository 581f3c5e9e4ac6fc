import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { inputError } from "../errors.js";
import { HF_CONFIG } from "./fileNames.js";
import { type GgufMetadata, SYNTHETIC_MODEL_KEY } from "./gguf.js";
import { checkGgufForLlama } from "./ggufRead.js";
import { type LlamaDims, readLlamaConfig } from "./llamaConfig.js";

/** What a base model is, read from its GGUF header or config.json without loading it. */
export interface ModelInfo {
  /** The resolved path. */
  path: string;
  /** llama.cpp's architecture name ("llama" for Llama and Mistral), or config.json's model_type. */
  architecture: string;
  /** The context it was trained with; null when a GGUF does not say. */
  context: number | null;
  /** Its weight shapes when it is a Llama-architecture model whose header says them all. */
  dims: LlamaDims | null;
  /** Written by `loramix synth-model`: random weights, for timing only. */
  synthetic: boolean;
}

/**
 * Reads a base model's header, so that options and the bank's adapters are checked against it
 * before any work. A path that is no model is refused here.
 */
export async function readModelInfo(model: string): Promise<ModelInfo> {
  const path = resolve(model);
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw inputError(path, "no such model file or directory");
  if (info.isDirectory()) {
    const c = await readLlamaConfig(join(path, HF_CONFIG));
    return { path, architecture: c.modelType, context: c.contextLength, dims: c, synthetic: false };
  }
  const { metadata } = await checkGgufForLlama(path, "model");
  const arch = (metadata["general.architecture"]?.value as string | undefined) ?? "";
  const n = (key: string) => {
    const v = metadata[`${arch}.${key}`];
    return v !== undefined && (v.type === "u32" || v.type === "i32" || v.type === "u64")
      ? Number(v.value)
      : null;
  };
  return {
    path,
    architecture: arch,
    context: n("context_length"),
    dims: llamaDims(arch, n, metadata),
    synthetic: metadata[SYNTHETIC_MODEL_KEY]?.value === true,
  };
}

/** The shapes of a GGUF's Llama weights (llama.cpp names Mistral's "llama" too), when all are given. */
function llamaDims(
  arch: string,
  n: (key: string) => number | null,
  metadata: GgufMetadata,
): LlamaDims | null {
  if (arch !== "llama") return null;
  const [nLayer, nEmbd, nFf, nHead] = [
    n("block_count"),
    n("embedding_length"),
    n("feed_forward_length"),
    n("attention.head_count"),
  ];
  const tokens = metadata["tokenizer.ggml.tokens"];
  if (nLayer === null || nEmbd === null || nFf === null || nHead === null || tokens?.type !== "array")
    return null;
  return {
    nLayer,
    nEmbd,
    nFf,
    nHead,
    nHeadKv: n("attention.head_count_kv") ?? nHead,
    headDim: n("attention.key_length") ?? nEmbd / nHead,
    vocabSize: tokens.value.length,
  };
}
