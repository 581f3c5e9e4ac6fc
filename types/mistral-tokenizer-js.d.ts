declare module "mistral-tokenizer-js" {
  /** The package's one default export: encoder, decoder and the decoded vocabulary and merge table. */
  const mistralTokenizer: {
    encode(prompt: string, addBosToken?: boolean, addPrecedingSpace?: boolean): number[];
    decode(tokenIds: number[], addBosToken?: boolean, addPrecedingSpace?: boolean): string;
    /** Piece strings by id (32000), spaces written as "▁", bytes as "<0xNN>". */
    vocabById: string[];
    vocabByString: Map<string, number>;
    /** "<left piece> <right piece>" -> merge priority (lower merges first). */
    merges: Map<string, number>;
  };
  export default mistralTokenizer;
}
