import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { inputError, LoramixError } from "../errors.js";
import { HF_CONFIG } from "../formats/fileNames.js";
import {
  LLAMA_PROJECTIONS,
  type LlamaDims,
  type LlamaProjection,
  MISTRAL_7B_DIMS,
  projectionShape,
  readLlamaConfig,
} from "../formats/llamaConfig.js";
import type { LoraModule } from "../formats/peft.js";

/**
 * The model a bank's adapters were trained on, as PEFT names it in `base_model_name_or_path`: a hub
 * id, or a local model directory (so `AutoPeftModelForCausalLM.from_pretrained` finds it).
 */
export interface BaseModel {
  /** A hub id, or the absolute path of a local model directory. */
  name: string;
  /** Known for Llama-architecture models (config.json, or a hub id listed below); null otherwise. */
  dims: LlamaDims | null;
}

/**
 * Hub models whose config.json is known without downloading it: the Lots-of-LoRAs base and its
 * siblings of the same shape (their config.json on the hub: hidden_size 4096, 32 layers, ...).
 */
const KNOWN_HUB_MODELS: Record<string, LlamaDims> = {
  "mistralai/Mistral-7B-Instruct-v0.2": MISTRAL_7B_DIMS,
  "mistralai/Mistral-7B-Instruct-v0.1": MISTRAL_7B_DIMS,
  "mistralai/Mistral-7B-v0.1": MISTRAL_7B_DIMS,
};

/** A hub id is `name` or `owner/name` in the hub's alphabet; anything else must be a local directory. */
const HUB_ID = /^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Resolves what the user gave as the base model. An existing path must be a model directory (PEFT
 * cannot load a base from a GGUF file); otherwise the text must look like a hub id.
 */
export async function resolveBaseModel(spec: string): Promise<BaseModel> {
  if (existsSync(spec)) {
    const dir = resolve(spec);
    if (!statSync(dir).isDirectory())
      throw inputError(spec, "the base model must be a model directory (with config.json) or a hub id");
    return { name: dir, dims: await llamaDimsOf(dir) };
  }
  if (!HUB_ID.test(spec) || spec.includes("..")) {
    throw inputError(spec, "no such model directory, and not a hub id (owner/name)");
  }
  return { name: spec, dims: KNOWN_HUB_MODELS[spec] ?? null };
}

/** Dimensions from a directory's config.json when it describes a Llama-architecture model. */
async function llamaDimsOf(dir: string): Promise<LlamaDims | null> {
  const file = join(dir, HF_CONFIG);
  if (!existsSync(file)) throw inputError(dir, "model directory has no config.json");
  let modelType: unknown;
  try {
    modelType = (JSON.parse(await readFile(file, "utf8")) as { model_type?: unknown }).model_type;
  } catch {
    modelType = undefined;
  }
  // Other architectures are accepted as a name only; readLlamaConfig reports a broken Llama config.
  if (modelType !== "llama" && modelType !== "mistral") return null;
  return readLlamaConfig(file);
}

/** The tokenizer must not produce ids the base model has no embedding for. */
export function checkTokenizerFits(base: BaseModel, tokenizer: string, vocabSize: number): void {
  if (base.dims && vocabSize > base.dims.vocabSize) {
    throw new LoramixError(
      "LAYOUT",
      `${tokenizer}: tokenizer has ${vocabSize} tokens, more than the ${base.dims.vocabSize} of base model ${base.name}`,
    );
  }
}

const MODULE_PATTERN = /\.layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)$/;

/**
 * Differences between an adapter's LoRA modules and the base model's weights (at most `limit`): a
 * module the model does not have, a layer beyond its depth, or in/out sizes of another shape.
 */
export function adapterBaseDifferences(modules: LoraModule[], base: BaseModel, limit = 3): string[] {
  const dims = base.dims;
  if (dims === null) return [];
  const found: string[] = [];
  for (const m of modules) {
    if (found.length >= limit) break;
    const match = MODULE_PATTERN.exec(m.module);
    const proj = match?.[2] as LlamaProjection | undefined;
    if (!match || proj === undefined || !(LLAMA_PROJECTIONS as readonly string[]).includes(proj)) {
      found.push(`module ${m.module} is not a projection of a Llama-architecture model`);
      continue;
    }
    const layer = Number(match[1]);
    if (layer >= dims.nLayer) {
      found.push(`${m.module}: layer ${layer}, the base model has ${dims.nLayer} layers`);
      continue;
    }
    const [out, inF] = projectionShape(dims, proj);
    if (m.inFeatures !== inF || m.outFeatures !== out) {
      found.push(`${m.module}: ${m.inFeatures}→${m.outFeatures}, the base model's ${proj} is ${inF}→${out}`);
    }
  }
  return found;
}
