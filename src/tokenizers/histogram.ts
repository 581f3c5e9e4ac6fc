import type { Tokenizer } from "./tokenizer.js";

/** Token counts of a batch of texts, sparse: ids ascending, counts aligned. */
export interface SparseHistogram {
  ids: Uint32Array;
  counts: Float64Array;
  nTokens: number;
}

/**
 * Counts the ids of `texts` into a dense scratch array and returns them sparse. The scratch array
 * is reused across batches (only touched ids are reset), so a batch costs its tokens, not V.
 */
export class HistogramCounter {
  private readonly dense: Float64Array;
  private readonly touched: number[] = [];

  constructor(private readonly tokenizer: Tokenizer) {
    this.dense = new Float64Array(tokenizer.vocabSize);
  }

  count(texts: readonly string[], bos: boolean): SparseHistogram {
    const dense = this.dense;
    const touched = this.touched;
    let nTokens = 0;
    for (const text of texts) {
      const ids = this.tokenizer.encode(text, { bos });
      nTokens += ids.length;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as number;
        if (dense[id] === 0) touched.push(id);
        dense[id] = (dense[id] as number) + 1;
      }
    }
    touched.sort((a, b) => a - b);
    const ids = Uint32Array.from(touched);
    const counts = new Float64Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      counts[i] = dense[id] as number;
      dense[id] = 0;
    }
    touched.length = 0;
    return { ids, counts, nTokens };
  }
}
