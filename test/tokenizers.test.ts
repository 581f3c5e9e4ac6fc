import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import mistralTokenizer from "mistral-tokenizer-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { bosIdOf } from "../src/tokenizers/huggingface.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import { chunkBoundariesAreSafe, mistral } from "../src/tokenizers/mistral.js";
import { sha256 } from "../src/util/hash.js";
import { MISTRAL_TOKENIZER_MODEL, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

interface SpPiece {
  piece: string;
  score: number;
  type: number;
}

/** Minimal SentencePiece ModelProto reader: field 1 = repeated SentencePiece {1 piece, 2 score, 3 type}. */
function readSentencePieceModel(bytes: Uint8Array): SpPiece[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const varint = (pos: { at: number }): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos.at >= bytes.length) throw new Error("varint past end");
      const b = bytes[pos.at++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
  };
  const skip = (pos: { at: number }, wire: number) => {
    if (wire === 0) varint(pos);
    else if (wire === 1) pos.at += 8;
    else if (wire === 2) {
      const length = varint(pos);
      pos.at += length;
    } else if (wire === 5) pos.at += 4;
    else throw new Error(`wire type ${wire}`);
  };
  const pieces: SpPiece[] = [];
  const pos = { at: 0 };
  // ignoreBOM: piece 31759 is U+FEFF itself, which a default TextDecoder would drop.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  while (pos.at < bytes.length) {
    const key = varint(pos);
    if (key >>> 3 !== 1 || (key & 7) !== 2) {
      skip(pos, key & 7);
      continue;
    }
    const length = varint(pos);
    const end = pos.at + length;
    const p: SpPiece = { piece: "", score: 0, type: 1 };
    while (pos.at < end) {
      const k = varint(pos);
      const field = k >>> 3;
      if (field === 1 && (k & 7) === 2) {
        const n = varint(pos);
        p.piece = decoder.decode(bytes.subarray(pos.at, pos.at + n));
        pos.at += n;
      } else if (field === 2 && (k & 7) === 5) {
        p.score = view.getFloat32(pos.at, true);
        pos.at += 4;
      } else if (field === 3 && (k & 7) === 0) {
        p.type = varint(pos);
      } else skip(pos, k & 7);
    }
    pieces.push(p);
  }
  return pieces;
}

/**
 * SentencePiece BPE straight from the .model file: characters (unknown ones as byte pieces), then
 * merge the adjacent pair whose concatenation is the highest-scoring normal piece, leftmost on ties.
 */
function sentencePieceReference(text: string, pieces: SpPiece[]): number[] {
  const byPiece = new Map<string, number>();
  pieces.forEach((p, id) => {
    if (p.type === 1) byPiece.set(p.piece, id);
  });
  const symbols: string[] = [];
  for (const c of `▁${text.replaceAll(" ", "▁")}`) symbols.push(byPiece.has(c) ? c : `\u0000${c}`);
  for (;;) {
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const id = byPiece.get(`${symbols[i]}${symbols[i + 1]}`);
      if (id !== undefined && (pieces[id] as SpPiece).score > bestScore) {
        bestScore = (pieces[id] as SpPiece).score;
        best = i;
      }
    }
    if (best < 0) break;
    symbols.splice(best, 2, `${symbols[best]}${symbols[best + 1]}`);
  }
  const ids: number[] = [1];
  for (const s of symbols) {
    if (!s.startsWith("\u0000")) ids.push(byPiece.get(s) as number);
    else for (const b of Buffer.from(s.slice(1))) ids.push(3 + b); // <0x00> is id 3 in this model
  }
  return ids;
}

/** Super-NI prompts built the Tk-Instruct way (definition, two positive examples, the instance). */
function sniPrompts(file: string, limit: number): string[] {
  // Some task files carry a bare NaN (e.g. "URL": [NaN]), which JSON.parse refuses.
  const task = JSON.parse(readFileSync(join(SNI_DIR, file), "utf8").replaceAll("[NaN]", "[null]"));
  const examples = (task["Positive Examples"] as { input: string; output: string }[])
    .slice(0, 2)
    .map((e, k) => ` Positive Example ${k + 1} -\nInput: ${e.input}\n Output: ${e.output}\n\n`)
    .join("");
  const prefix = `Definition: ${task.Definition[0]}\n\n${examples}`;
  return (task.Instances as { input: string; output: string[] }[])
    .slice(0, limit)
    .map(
      (x) => `${prefix}Now complete the following example -\nInput: ${x.input}\nOutput: ${x.output[0] ?? ""}`,
    );
}

const TRICKY = [
  "grabbed",
  " grabbed",
  "           grabbed",
  "\n",
  " \n",
  "\ttabs\t\t\t\tout here",
  "ax\n####\nboo",
  "镇",
  "Emoji 🦙🦙 and rare 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 glyphs, then ❤️.",
  "Literal <s> and </s> and <0x0A> stay text.",
  "trailing spaces   ",
  "  two leading, a▁real▁U+2581 char",
  "Größe, naïve café — “quotes” … 日本語のテキスト",
];

describe("mistral tokenizer", () => {
  const tok = mistral();
  let model: SpPiece[];
  beforeAll(() => {
    model = readSentencePieceModel(readFileSync(MISTRAL_TOKENIZER_MODEL));
  });

  it("has the vocabulary of Mistral's tokenizer.model, piece for piece", () => {
    expect(model.length).toBe(32000);
    expect(tok.vocabSize).toBe(32000);
    expect(tok.bosId).toBe(1);
    expect(model[1]?.piece).toBe("<s>");
    const mismatches = model.flatMap((p, id) =>
      mistralTokenizer.vocabById[id] !== p.piece ? [[id, p.piece, mistralTokenizer.vocabById[id]]] : [],
    );
    expect(mismatches).toEqual([]);
    // Byte-fallback pieces <0x00>..<0xFF> are ids 3..258, SentencePiece type BYTE (6).
    expect(
      model
        .slice(3, 259)
        .every((p, b) => p.type === 6 && p.piece === `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
    ).toBe(true);
  });

  it("merges in the order of the model's scores (so rank order is SentencePiece's score order)", () => {
    const merged = [...mistralTokenizer.merges].sort((a, b) => a[1] - b[1]).map(([k]) => k.replace(" ", ""));
    let inversions = 0;
    for (let i = 1; i < merged.length; i++) {
      const prev = model[mistralTokenizer.vocabByString.get(merged[i - 1] as string) as number] as SpPiece;
      const cur = model[mistralTokenizer.vocabByString.get(merged[i] as string) as number] as SpPiece;
      if (cur.score > prev.score) inversions++;
    }
    expect(merged.length).toBeGreaterThan(50_000);
    expect(inversions).toBe(0);
  });

  it("uses chunked encoding, whose precondition it checks on the vocabulary", () => {
    expect(tok.chunked).toBe(true);
    expect(chunkBoundariesAreSafe(["▁", "▁▁", "▁the", "ab"])).toBe(true);
    expect(chunkBoundariesAreSafe(["▁the", "of▁the"])).toBe(false);
    expect(chunkBoundariesAreSafe(["a b"])).toBe(false);
  });

  it("matches SentencePiece BPE computed from the .model scores on tricky and real texts", () => {
    const real = sniPrompts("task628_xlwic_word_with_different_meaning_sentence_generation.json", 4);
    for (const text of [...TRICKY, ...real]) {
      expect(tok.encode(text, { bos: true }), text.slice(0, 40)).toEqual(sentencePieceReference(text, model));
    }
  });

  it("gives the package's known encodings, and [BOS] for an empty text", () => {
    expect(tok.encode("grabbed", { bos: true })).toEqual([1, 13300]);
    expect(tok.encode("           grabbed", { bos: true })).toEqual([1, 17422, 13300]);
    expect(tok.encode(" \n")).toEqual([259, 13]);
    expect(tok.encode("", { bos: true })).toEqual([1]);
    expect(tok.encode("")).toEqual([]);
  });

  it("equals the package's whole-text encoding on thousands of real Super-NI prompts", () => {
    const files = readdirSync(SNI_DIR).sort();
    const picked = [files[0], files[37], files[101], files[202], files[303], files[413]] as string[];
    let records = 0;
    let tokens = 0;
    let differing = 0;
    for (const file of picked) {
      for (const text of sniPrompts(file, 250)) {
        const ours = tok.encode(text, { bos: true });
        const ref = mistralTokenizer.encode(text, true, true);
        if (ours.length !== ref.length || ours.some((id, i) => id !== ref[i])) differing++;
        records++;
        tokens += ref.length;
      }
    }
    expect(records).toBeGreaterThan(1200);
    expect(tokens).toBeGreaterThan(150_000);
    expect(differing).toBe(0);
  }, 60_000);
});

describe("Hugging Face tokenizer.json", () => {
  const file = join(TINY_MODEL, "tokenizer.json");
  const json = JSON.parse(readFileSync(file, "utf8")) as {
    model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  };
  const pieceOf = new Map(Object.entries(json.model.vocab).map(([p, id]) => [id, p]));

  /**
   * BPE from tokenizer.json itself: lowest merge rank first, leftmost on ties; no pre-tokenizer
   * here. A character outside the vocabulary becomes its byte pieces when all exist, else <unk>
   * (consecutive unknowns fused), as the file asks (byte_fallback, fuse_unk).
   */
  function bpeReference(text: string): number[] {
    const rank = new Map(json.model.merges.map((m, i) => [typeof m === "string" ? m : m.join(" "), i]));
    const symbols: string[] = [];
    for (const c of `▁${text.replaceAll(" ", "▁")}`) {
      const bytes = [...Buffer.from(c)].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
      if (c in json.model.vocab) symbols.push(c);
      else if (bytes.every((b) => b in json.model.vocab)) symbols.push(...bytes);
      else if (symbols.at(-1) !== "<unk>") symbols.push("<unk>");
    }
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = rank.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      symbols.splice(best, 2, `${symbols[best]}${symbols[best + 1]}`);
    }
    return symbols.map((s) => json.model.vocab[s] as number);
  }

  it("loads from the model directory or the file, named by the file's hash", async () => {
    const fromDir = await loadTokenizer(TINY_MODEL);
    const fromFile = await loadTokenizer(file);
    expect(fromDir.name).toBe(`hf:${sha256(readFileSync(file))}`);
    expect(fromFile.name).toBe(fromDir.name);
    expect(fromDir.spec).toBe(file);
    expect(fromDir.vocabSize).toBe(2048);
    expect(fromDir.bosId).toBe(1); // <|start_story|>, tokenizer_config add_bos_token: true
  });

  it("round-trips text and matches BPE computed from the file's merges", async () => {
    const tok = await loadTokenizer(TINY_MODEL);
    const texts = [
      "Once upon a time, there was a little cat named Tom.",
      "  Two spaces, then\nnewline and\ttab; (1+2)*3 = 9!",
      ...sniPrompts("task1319_country_by_barcode_prefix.json", 3),
    ];
    const unknown = "émigré 🦙🦙 Größe";
    expect(tok.encode(unknown)).toEqual(bpeReference(unknown));
    expect(tok.encode(unknown)).toContain(0);
    let decoded = 0;
    for (const text of texts) {
      const ids = tok.encode(text, { bos: true });
      expect(ids[0]).toBe(1);
      expect(ids.slice(1)).toEqual(bpeReference(text));
      expect(tok.encode(text)).toEqual(ids.slice(1));
      if (ids.includes(0)) continue; // <unk> does not decode back; the first two texts have none
      decoded++;
      const bytes: number[] = [];
      for (const id of ids.slice(1)) {
        const piece = pieceOf.get(id) as string;
        const byte = /^<0x([0-9A-F]{2})>$/.exec(piece);
        if (byte) bytes.push(Number.parseInt(byte[1] as string, 16));
        else bytes.push(...Buffer.from(piece.replaceAll("▁", " ")));
      }
      expect(Buffer.from(bytes).toString("utf8")).toBe(` ${text}`);
    }
    expect(decoded).toBeGreaterThanOrEqual(2);
  });

  it("chooses BOS by tokenizer_config, then the post-processor", () => {
    const ids: Record<string, number> = { "<s>": 1, "[CLS]": 101, "<bos>": 2 };
    const id = (t: string) => ids[t];
    const template = {
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        special_tokens: { "<bos>": { id: "<bos>", ids: [2], tokens: ["<bos>"] } },
      },
    };
    expect(bosIdOf(template, {}, id)).toBe(2);
    expect(bosIdOf(template, { add_bos_token: false, bos_token: "<s>" }, id)).toBeNull();
    expect(bosIdOf(template, { add_bos_token: true, bos_token: { content: "<s>" } }, id)).toBe(1);
    expect(
      bosIdOf(
        { post_processor: { type: "BertProcessing", cls: ["[CLS]", 101], sep: ["[SEP]", 102] } },
        {},
        id,
      ),
    ).toBe(101);
    expect(
      bosIdOf(
        {
          post_processor: { type: "Sequence", processors: [{ type: "ByteLevel" }, template.post_processor] },
        },
        {},
        id,
      ),
    ).toBe(2);
    expect(bosIdOf({ post_processor: { type: "ByteLevel" } }, { bos_token: "<s>" }, id)).toBeNull();
    expect(bosIdOf({ post_processor: null }, {}, id)).toBeNull();
  });

  describe("bad inputs", () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ dir, cleanup } = await tempDir());
    });
    afterAll(() => cleanup());

    it("names the file and the problem", async () => {
      const problem = async (spec: string) => {
        const error = await loadTokenizer(spec).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(LoramixError);
        return (error as LoramixError).message;
      };
      expect(await problem(join(dir, "missing.json"))).toBe(
        `${join(dir, "missing.json")}: no such tokenizer (expected "mistral", a tokenizer.json, or a directory containing one)`,
      );
      await mkdir(join(dir, "empty"));
      expect(await problem(join(dir, "empty"))).toBe(
        `${join(dir, "empty")}: directory has no tokenizer.json`,
      );
      expect(await problem(MISTRAL_TOKENIZER_MODEL)).toMatch(/SentencePiece \.model files are not read/);
      await writeFile(join(dir, "broken.json"), '{"model": ');
      expect(await problem(join(dir, "broken.json"))).toMatch(
        new RegExp(`^${join(dir, "broken.json")}: not valid JSON`),
      );
      await writeFile(join(dir, "array.json"), "[1, 2]");
      expect(await problem(join(dir, "array.json"))).toBe(
        `${join(dir, "array.json")}: expected a JSON object`,
      );
    });
  });
});
