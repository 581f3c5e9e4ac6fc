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
  encode(text: string, options?: { bos?: boolean }): number[];
}
