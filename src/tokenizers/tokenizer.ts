/**
 * What the rest of loramix needs from a tokenizer: ids for a text, and an identity that banks and
 * profiles store, so that histograms made with different tokenizers are never compared.
 */
export interface Tokenizer {
  /** "mistral" or "hf:<sha256 of tokenizer.json>": the identity stored in banks and profiles. */
  readonly name: string;
  /** What `loadTokenizer` takes to rebuild this tokenizer in a worker: "mistral" or an absolute path. */
  readonly spec: string;
  readonly vocabSize: number;
  /** The id prepended by `encode(text, { bos: true })`; null when the tokenizer has no BOS. */
  readonly bosId: number | null;
  /**
   * The text of the end token (e.g. "<|end_story|>", "</s>"), or null when unknown. A small model can
   * spell it with ordinary pieces instead of emitting the token; evaluation cuts predictions there.
   */
  readonly eosText: string | null;
  encode(text: string, options?: { bos?: boolean }): number[];
}
