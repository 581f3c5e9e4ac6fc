import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { inputError } from "../errors.js";
import { HF_CONFIG } from "./fileNames.js";
import { checkGgufForLlama } from "./ggufRead.js";
import { readLlamaConfig } from "./llamaConfig.js";

/**
 * The context a base model was trained with, read from its GGUF header (`<arch>.context_length`)
 * or its Hugging Face config.json without loading it, so that options are checked against it
 * before any work; null when a GGUF does not say. A path that is no model is refused here.
 */
export async function trainedContext(model: string): Promise<number | null> {
  const path = resolve(model);
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw inputError(path, "no such model file or directory");
  if (info.isDirectory()) return (await readLlamaConfig(join(path, HF_CONFIG))).contextLength;
  const { metadata } = await checkGgufForLlama(path, "model");
  const arch = metadata["general.architecture"];
  const length = arch?.type === "string" ? metadata[`${arch.value}.context_length`] : undefined;
  return length?.type === "u32" || length?.type === "i32" || length?.type === "u64"
    ? Number(length.value)
    : null;
}
