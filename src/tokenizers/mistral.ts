import mistralTokenizer from "mistral-tokenizer-js";
import type { Tokenizer } from "./tokenizer.js";

const SPACE = "▁";
const SPACE_CODE = 0x2581;
const BOS_ID = 1;
/** Longer chunks (URLs, text without spaces) are encoded but not cached: they rarely repeat. */
const MAX_CACHED_CHUNK = 64;
/** A worker profiling hundreds of datasets keeps its cache bounded; clearing is cheap to recover from. */
const MAX_CACHE_ENTRIES = 400_000;

/**
 * Mistral's SentencePiece BPE (v1 vocabulary, 32000 pieces) as in SPEC §2:
 * `mistralTokenizer.encode(text, addBos, addPrecedingSpace = true)`, reimplemented for speed.
 *
 * BPE never merges across a boundary that no vocabulary piece spans. Mistral has no piece with a
 * non-"▁" character followed by "▁", so the "▁"-normalised text splits, before every "▁" that
 * follows another character, into chunks ("▁word", "▁▁▁x", "\n"...) that tokenize independently.
 * Chunk results are cached, which makes repeated words and the prompt prefix that every record of a
 * Super-NI task shares nearly free. The precondition is checked on the vocabulary at load; when it
 * does not hold, whole texts go to the package's encoder.
 */
export class MistralTokenizer implements Tokenizer {
  readonly name = "mistral";
  readonly spec = "mistral";
  readonly vocabSize: number;
  readonly bosId = BOS_ID;
  readonly eosText = "</s>";
  /** Whether chunked encoding is exact for this vocabulary (see the class comment). */
  readonly chunked: boolean;
  private readonly pieceIds: Map<string, number>;
  /** (left id · vocabSize + right id) -> rank · 2^16 + merged id; lower rank merges first. */
  private readonly mergeTable = new Map<number, number>();
  private readonly byteIds: Int32Array;
  private readonly cache = new Map<string, number[]>();

  constructor() {
    const vocab = mistralTokenizer.vocabById;
    this.vocabSize = vocab.length;
    this.pieceIds = mistralTokenizer.vocabByString;
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      this.byteIds[b] = this.pieceIds.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`) ?? -1;
    }
    this.chunked = chunkBoundariesAreSafe(vocab) && this.buildMergeTable();
  }

  encode(text: string, { bos = false }: { bos?: boolean } = {}): number[] {
    const out: number[] = bos ? [BOS_ID] : [];
    // The package returns [] for "", BOS included; SentencePiece-based tokenizers give [BOS].
    if (text.length === 0) return out;
    if (!this.chunked) {
      for (const id of mistralTokenizer.encode(text, false, true)) out.push(id);
      return out;
    }
    const s = SPACE + text.replaceAll(" ", SPACE);
    let start = 0;
    for (let i = s.indexOf(SPACE, 1); i !== -1; i = s.indexOf(SPACE, i + 1)) {
      if (s.charCodeAt(i - 1) !== SPACE_CODE) {
        this.encodeChunk(s.slice(start, i), out);
        start = i;
      }
    }
    this.encodeChunk(s.slice(start), out);
    return out;
  }

  private encodeChunk(chunk: string, out: number[]): void {
    let ids = this.cache.get(chunk);
    if (ids === undefined) {
      ids = this.bpe(chunk);
      if (chunk.length <= MAX_CACHED_CHUNK) {
        if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
        this.cache.set(chunk, ids);
      }
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
  }

  /**
   * SentencePiece BPE on one chunk: characters (unknown ones as UTF-8 byte pieces), then
   * repeatedly the lowest-rank adjacent merge, the leftmost on ties. Chunks are short, so a linear
   * scan per merge beats a heap.
   */
  private bpe(chunk: string): number[] {
    const ids: number[] = [];
    for (const c of chunk) {
      const id = this.pieceIds.get(c);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      for (const b of Buffer.from(c, "utf8")) ids.push(this.byteIds[b] as number);
    }
    const v = this.vocabSize;
    for (;;) {
      let best = Number.POSITIVE_INFINITY;
      let at = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = this.mergeTable.get((ids[i] as number) * v + (ids[i + 1] as number));
        if (m !== undefined && m < best) {
          best = m;
          at = i;
        }
      }
      if (at < 0) return ids;
      ids[at] = best % 0x10000;
      ids.splice(at + 1, 1);
    }
  }

  /** Reads the package's merge table into integer keys; false if it is not in the expected shape. */
  private buildMergeTable(): boolean {
    if (this.vocabSize > 0xffff || this.byteIds.includes(-1)) return false;
    for (const [key, priority] of mistralTokenizer.merges) {
      const sep = key.indexOf(" ");
      const left = this.pieceIds.get(key.slice(0, sep));
      const right = this.pieceIds.get(key.slice(sep + 1));
      const merged = this.pieceIds.get(key.slice(0, sep) + key.slice(sep + 1));
      if (sep < 0 || left === undefined || right === undefined || merged === undefined) return false;
      if (!Number.isInteger(priority) || priority < 0 || priority >= 2 ** 36) return false;
      this.mergeTable.set(left * this.vocabSize + right, priority * 0x10000 + merged);
    }
    return true;
  }
}

/**
 * True when no piece contains a character other than "▁" followed by "▁" (so no merge spans a
 * chunk boundary) and no piece contains a plain space (the merge table's separator).
 */
export function chunkBoundariesAreSafe(vocab: readonly string[]): boolean {
  for (const piece of vocab) {
    if (piece.includes(" ")) return false;
    for (let i = piece.indexOf(SPACE, 1); i !== -1; i = piece.indexOf(SPACE, i + 1)) {
      if (piece.charCodeAt(i - 1) !== SPACE_CODE) return false;
    }
  }
  return true;
}

let shared: MistralTokenizer | undefined;

/** One instance per thread: the vocabulary and merge table take ~100 ms to build. */
export function mistral(): MistralTokenizer {
  shared ??= new MistralTokenizer();
  return shared;
}
