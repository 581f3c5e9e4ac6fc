import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { formatError } from "../errors.js";
import { sha256 } from "../util/hash.js";
import type { Tokenizer } from "./tokenizer.js";

type Json = Record<string, unknown>;

/**
 * A Hugging Face `tokenizer.json` (with `tokenizer_config.json` beside it when present), run by
 * @huggingface/tokenizers. Texts are encoded without the post-processor's special tokens; with
 * `bos` the BOS id chosen by `bosIdOf` is prepended, so profiles never get an EOS (SPEC §2).
 */
export class HuggingFaceTokenizer implements Tokenizer {
  readonly name: string;
  readonly spec: string;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosText: string | null;
  private readonly impl: HfTokenizerImpl;

  private constructor(
    file: string,
    hash: string,
    impl: HfTokenizerImpl,
    bosId: number | null,
    eosText: string | null,
  ) {
    this.name = `hf:${hash}`;
    this.spec = file;
    this.impl = impl;
    this.bosId = bosId;
    this.eosText = eosText;
    let maxId = -1;
    for (const id of impl.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
  }

  /** `file` is an absolute path to tokenizer.json. */
  static async load(file: string): Promise<HuggingFaceTokenizer> {
    const bytes = await readFile(file);
    const json = parseJsonObject(file, bytes.toString("utf8"));
    const configFile = join(dirname(file), "tokenizer_config.json");
    const config = existsSync(configFile)
      ? parseJsonObject(configFile, await readFile(configFile, "utf8"))
      : {};
    let impl: HfTokenizerImpl;
    try {
      impl = new HfTokenizerImpl(json, config);
    } catch (error) {
      throw formatError(file, `cannot build a tokenizer from it: ${(error as Error).message}`, error);
    }
    const bosId = bosIdOf(json, config, (token) => impl.token_to_id(token));
    if (bosId !== null && impl.id_to_token(bosId) === undefined) {
      throw formatError(file, `BOS id ${bosId} is not in the vocabulary`);
    }
    return new HuggingFaceTokenizer(file, sha256(bytes), impl, bosId, eosTextOf(config));
  }

  encode(text: string, { bos = false }: { bos?: boolean } = {}): number[] {
    const ids = this.impl.encode(text, { add_special_tokens: false }).ids;
    if (bos && this.bosId !== null) ids.unshift(this.bosId);
    return ids;
  }
}

/**
 * The BOS a model's tokenizer prepends, which is what the model saw in training:
 * 1. `tokenizer_config.json` with a boolean `add_bos_token`: false means no BOS; true means its
 *    `bos_token` (a string or `{content}`).
 * 2. Otherwise the post-processor's: the special token that a TemplateProcessing `single`
 *    template starts with, or the `cls` token of Bert/Roberta processing (first match in a Sequence).
 * 3. Otherwise none (e.g. GPT-2 or Qwen style byte-level tokenizers).
 */
export function bosIdOf(
  json: Json,
  config: Json,
  tokenToId: (token: string) => number | undefined,
): number | null {
  if (typeof config.add_bos_token === "boolean") {
    if (!config.add_bos_token) return null;
    const bos = config.bos_token;
    const content = typeof bos === "string" ? bos : isObject(bos) ? bos.content : undefined;
    const id = typeof content === "string" ? tokenToId(content) : undefined;
    if (id !== undefined) return id;
  }
  return postProcessorBos(json.post_processor);
}

/** `tokenizer_config.json`'s `eos_token` (a string or `{content}`), the only place that names it. */
function eosTextOf(config: Json): string | null {
  const eos = config.eos_token;
  const content = typeof eos === "string" ? eos : isObject(eos) ? eos.content : undefined;
  return typeof content === "string" && content !== "" ? content : null;
}

function postProcessorBos(processor: unknown): number | null {
  if (!isObject(processor)) return null;
  switch (processor.type) {
    case "TemplateProcessing": {
      const first = Array.isArray(processor.single) ? processor.single[0] : undefined;
      if (!isObject(first) || !isObject(first.SpecialToken)) return null;
      const name = first.SpecialToken.id;
      const special =
        isObject(processor.special_tokens) && typeof name === "string"
          ? processor.special_tokens[name]
          : undefined;
      const ids = isObject(special) ? special.ids : undefined;
      return Array.isArray(ids) && typeof ids[0] === "number" ? ids[0] : null;
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const cls = processor.cls;
      return Array.isArray(cls) && typeof cls[1] === "number" ? cls[1] : null;
    }
    case "Sequence": {
      for (const p of Array.isArray(processor.processors) ? processor.processors : []) {
        const id = postProcessorBos(p);
        if (id !== null) return id;
      }
      return null;
    }
    default:
      return null;
  }
}

function parseJsonObject(file: string, text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw formatError(file, `not valid JSON (${(error as Error).message})`, error);
  }
  if (!isObject(value)) throw formatError(file, "expected a JSON object");
  return value;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
