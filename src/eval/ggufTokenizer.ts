import { createHash } from "node:crypto";
import type { LlamaModel, Token } from "node-llama-cpp";
import type { Tokenizer } from "../tokenizers/tokenizer.js";

/**
 * Whether llama.cpp can tokenize any text with `model`'s vocabulary: its SentencePiece tokenizer
 * ("llama") spells a character no piece covers with byte pieces <0x00>..<0xFF>, and without them
 * it aborts the process (std::out_of_range in llama.cpp; seen with TinyStories' converted vocabulary).
 * Byte-level BPE vocabularies cover every byte by construction.
 */
export function tokenizesAnyText(model: LlamaModel): boolean {
  const ggml = model.fileInfo.metadata.tokenizer?.ggml;
  if (ggml?.model !== "llama") return true;
  const types = (ggml as { token_type?: readonly number[] }).token_type ?? [];
  return types.filter((t) => t === BYTE_PIECE).length >= 256;
}

/** llama.cpp's LLAMA_TOKEN_TYPE_BYTE. */
const BYTE_PIECE = 6;

/**
 * A GGUF's own vocabulary, run by llama.cpp: what most GGUF users have instead of a tokenizer.json.
 * Its ids are exactly those llama.cpp generates from, so evaluation and scoring need nothing else
 * (for Mistral's vocabulary it matches mistral-tokenizer-js piece for piece; tested).
 */
export class GgufTokenizer implements Tokenizer {
  readonly name: string;
  readonly spec: string;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosText: string | null;

  constructor(
    private readonly model: LlamaModel,
    file: string,
  ) {
    this.spec = file;
    const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens ?? [];
    this.vocabSize = vocab.length;
    this.name = `gguf:${createHash("sha256").update(vocab.join("\0")).digest("hex")}`;
    this.bosId = model.tokens.bos;
    const eos = model.tokens.eos;
    this.eosText = eos === null ? null : model.detokenize([eos], true);
  }

  encode(text: string, { bos = false }: { bos?: boolean } = {}): number[] {
    const ids = this.model.tokenize(text, false) as number[];
    return bos && this.bosId !== null ? [this.bosId, ...ids] : [...ids];
  }

  /** Generated ids back to text, special tokens left out. */
  decode(ids: readonly number[]): string {
    return this.model.detokenize(ids as Token[], false);
  }
}
