import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LoramixError } from "../errors.js";
import { TOKENIZER_JSON } from "../formats/fileNames.js";
import { HuggingFaceTokenizer } from "./huggingface.js";
import { mistral } from "./mistral.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * "mistral" (SPEC §2's Mistral tokenizer), a path to a Hugging Face tokenizer.json, or a model
 * directory that contains one. The returned `spec` rebuilds the same tokenizer in a worker.
 */
export async function loadTokenizer(spec: string): Promise<Tokenizer> {
  if (spec === "mistral") return mistral();
  const path = resolve(spec);
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) {
    throw new LoramixError(
      "TOKENIZER",
      `${spec}: no such tokenizer (expected "mistral", a tokenizer.json, or a directory containing one)`,
    );
  }
  if (info.isDirectory()) {
    const file = join(path, TOKENIZER_JSON);
    if (!(await stat(file).catch(() => undefined))?.isFile()) {
      throw new LoramixError("TOKENIZER", `${path}: directory has no tokenizer.json`);
    }
    return HuggingFaceTokenizer.load(file);
  }
  if (path.endsWith(".model")) {
    throw new LoramixError(
      "TOKENIZER",
      `${path}: SentencePiece .model files are not read; use "mistral" or the model's tokenizer.json`,
    );
  }
  return HuggingFaceTokenizer.load(path);
}
