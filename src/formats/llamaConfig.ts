import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { formatError, inputError } from "../errors.js";
import { HF_CONFIG } from "./fileNames.js";

/**
 * Llama-family hyperparameters from a Hugging Face `config.json`, with what llama.cpp's
 * converter derives from them. Mistral is a Llama for llama.cpp (same graph, same GGUF names).
 */
export interface LlamaConfig {
  file: string;
  modelType: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  ropeScaling: { type: "linear"; factor: number } | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  torchDtype: string | null;
}

/** The sizes that fix every weight shape of a Llama-architecture model. */
export type LlamaDims = Pick<
  LlamaConfig,
  "nLayer" | "nEmbd" | "nFf" | "nHead" | "nHeadKv" | "headDim" | "vocabSize"
>;

/** Mistral-7B's (v0.1 and v0.2, the Lots-of-LoRAs base), from its config.json on the hub. */
export const MISTRAL_7B_DIMS: LlamaDims = {
  nLayer: 32,
  nEmbd: 4096,
  nFf: 14336,
  nHead: 32,
  nHeadKv: 8,
  headDim: 128,
  vocabSize: 32000,
};

/**
 * The weights one token is multiplied through: every block's attention and FFN projections and the
 * output head (the embedding is a lookup). A model's compute per token is about twice this.
 */
export function weightsPerToken(d: LlamaDims): number {
  const q = d.nHead * d.headDim;
  const kv = d.nHeadKv * d.headDim;
  return d.nLayer * (d.nEmbd * (2 * q + 2 * kv) + 3 * d.nEmbd * d.nFf) + d.vocabSize * d.nEmbd;
}

/** The seven linear projections of a Llama block, as Hugging Face and PEFT name them. */
export const LLAMA_PROJECTIONS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;
export type LlamaProjection = (typeof LLAMA_PROJECTIONS)[number];

/** [out, in] of each projection, from the config. */
export function projectionShape(config: LlamaDims, proj: LlamaProjection): [number, number] {
  const q = config.nHead * config.headDim;
  const kv = config.nHeadKv * config.headDim;
  switch (proj) {
    case "q_proj":
      return [q, config.nEmbd];
    case "k_proj":
    case "v_proj":
      return [kv, config.nEmbd];
    case "o_proj":
      return [config.nEmbd, q];
    case "gate_proj":
    case "up_proj":
      return [config.nFf, config.nEmbd];
    case "down_proj":
      return [config.nEmbd, config.nFf];
    default:
      return proj satisfies never;
  }
}

const LLAMA_MODEL_TYPES = new Set(["llama", "mistral"]);

/** `path` is a model directory or its config.json. */
export async function readLlamaConfig(path: string): Promise<LlamaConfig> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw inputError(path, "no such file or directory");
  const file = info.isDirectory() ? join(path, HF_CONFIG) : path;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw inputError(path, "directory has no config.json");
    throw formatError(file, `not valid JSON: ${(error as Error).message}`, error);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw formatError(file, "not a JSON object");
  const c = raw as Record<string, unknown>;
  const modelType = typeof c.model_type === "string" ? c.model_type : "";
  if (!LLAMA_MODEL_TYPES.has(modelType)) {
    throw formatError(file, `model_type "${modelType}" is not a Llama-architecture model (llama, mistral)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0)
      throw formatError(file, `"${key}" must be a positive integer`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
      throw formatError(file, `"${key}" must be a positive number`);
    return v;
  };
  const nEmbd = int("hidden_size");
  const nHead = int("num_attention_heads");
  const nHeadKv = int("num_key_value_heads", nHead);
  const headDim = c.head_dim == null ? nEmbd / nHead : int("head_dim");
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw formatError(file, `head dimension ${headDim} must be an even integer`);
  if (nHead % nHeadKv !== 0)
    throw formatError(
      file,
      `num_attention_heads ${nHead} is not a multiple of num_key_value_heads ${nHeadKv}`,
    );
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (c[key] === true) throw formatError(file, `"${key}": true is not supported`);
  }
  let ropeScaling: LlamaConfig["ropeScaling"] = null;
  if (c.rope_scaling != null) {
    const rs = c.rope_scaling as Record<string, unknown>;
    const type = rs.rope_type ?? rs.type;
    if (type !== "linear" || typeof rs.factor !== "number") {
      throw formatError(
        file,
        `rope_scaling ${JSON.stringify(c.rope_scaling)} is not supported (only linear)`,
      );
    }
    ropeScaling = { type: "linear", factor: rs.factor };
  }
  const optionalId = (key: string): number | null => (typeof c[key] === "number" ? (c[key] as number) : null);
  return {
    file,
    modelType,
    nLayer: int("num_hidden_layers"),
    nEmbd,
    nFf: int("intermediate_size"),
    nHead,
    nHeadKv,
    headDim,
    vocabSize: int("vocab_size"),
    contextLength: int("max_position_embeddings"),
    ropeTheta: num("rope_theta", 10000),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    ropeScaling,
    bosTokenId: optionalId("bos_token_id"),
    eosTokenId: optionalId("eos_token_id"),
    torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : null,
  };
}
