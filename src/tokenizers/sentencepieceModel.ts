import { readFile } from "node:fs/promises";
import { formatError } from "../errors.js";

/** SentencePiece's piece types, numbered as llama.cpp's `llama_token_type` numbers them. */
export const PIECE_TYPES = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

/** More pieces than any real vocabulary (Gemma's is 262,144), so a corrupt count cannot exhaust memory. */
export const MAX_PIECES = 1 << 20;
/** Longer than any real piece; a longer string means a corrupt length. */
const MAX_PIECE_BYTES = 1 << 16;

/**
 * The pieces of a SentencePiece `tokenizer.model` (protobuf `ModelProto`, field 1: repeated
 * `SentencePiece {piece = 1, score = 2, type = 3}`), e.g. for the vocabulary of a GGUF. Read by
 * hand: no npm package reads this format without a protobuf runtime and the generated schema, and
 * the reader needs three fields. Every varint, length and piece is checked before it is trusted;
 * other fields are skipped by their wire type.
 */
export async function readSentencePieceModel(path: string): Promise<SentencePiece[]> {
  const bytes = new Uint8Array(await readFile(path));
  return parseSentencePieceModel(bytes, path);
}

export function parseSentencePieceModel(bytes: Uint8Array, path: string): SentencePiece[] {
  const pieces: SentencePiece[] = [];
  const top = new Reader(bytes, 0, bytes.length, path);
  while (!top.done()) {
    const { field, wire } = top.key();
    if (field === 1 && wire === 2) {
      if (pieces.length === MAX_PIECES) top.fail(`more than ${MAX_PIECES} pieces`);
      const [start, end] = top.span();
      pieces.push(parsePiece(new Reader(bytes, start, end, path), pieces.length));
    } else top.skip(wire);
  }
  if (pieces.length === 0) throw formatError(path, "holds no SentencePiece pieces: not a tokenizer.model");
  return pieces;
}

function parsePiece(r: Reader, index: number): SentencePiece {
  let piece: string | undefined;
  let score = 0;
  let type: number = PIECE_TYPES.normal;
  while (!r.done()) {
    const { field, wire } = r.key();
    if (field === 1 && wire === 2) {
      const [start, end] = r.span();
      if (end - start > MAX_PIECE_BYTES) r.fail(`piece ${index} is ${end - start} bytes long`);
      piece = r.utf8(start, end, index);
    } else if (field === 2 && wire === 5) score = r.float32();
    else if (field === 3 && wire === 0) {
      type = r.varint();
      if (!Object.values(PIECE_TYPES).includes(type as 1)) r.fail(`piece ${index} has unknown type ${type}`);
    } else r.skip(wire);
  }
  if (piece === undefined) r.fail(`piece ${index} has no text`);
  if (!Number.isFinite(score)) r.fail(`piece ${index} has score ${score}`);
  return { piece: piece as string, score, type };
}

/** Protobuf wire format over bytes[pos, end), every read checked against `end`. */
class Reader {
  private readonly view: DataView;
  private static readonly utf8Decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly bytes: Uint8Array,
    private pos: number,
    private readonly end: number,
    private readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  fail(problem: string): never {
    throw formatError(this.path, `SentencePiece model: ${problem} (at byte ${this.pos})`);
  }

  varint(): number {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.pos >= this.end) this.fail("a number runs past the end of its field");
      const b = this.bytes[this.pos++] as number;
      if (shift < 53) value += (b & 0x7f) * 2 ** shift;
      else if ((b & 0x7f) !== 0) this.fail("a number is too large");
      if ((b & 0x80) === 0) return value;
    }
    return this.fail("a number is longer than 10 bytes");
  }

  key(): { field: number; wire: number } {
    const k = this.varint();
    return { field: Math.floor(k / 8), wire: k % 8 };
  }

  /** A length-delimited field's [start, end), after checking that it fits. */
  span(): [number, number] {
    const length = this.varint();
    if (length > this.end - this.pos) this.fail(`a field of ${length} bytes runs past the end`);
    const start = this.pos;
    this.pos += length;
    return [start, this.pos];
  }

  float32(): number {
    if (this.end - this.pos < 4) this.fail("a float runs past the end");
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  utf8(start: number, end: number, index: number): string {
    try {
      return Reader.utf8Decoder.decode(this.bytes.subarray(start, end));
    } catch {
      return this.fail(`piece ${index} is not UTF-8`);
    }
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.span();
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (this.end - this.pos < n) this.fail("a fixed-size field runs past the end");
      this.pos += n;
    } else this.fail(`wire type ${wire} is not used by this format`);
  }
}
