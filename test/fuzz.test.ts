/**
 * Seeded mutation fuzzing of every reader of strangers' files. Each mutant must give either a
 * valid result or loramix's own one-line error naming the file, in bounded time, never an internal
 * error text or a crash. `npm test` runs FUZZ_MUTANTS (default 40) per reader; `npm run fuzz` runs
 * more and prints the outcome counts.
 */
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peftToGguf } from "../src/convert/peftToGguf.js";
import { loadDataset } from "../src/datasets/load.js";
import { LoramixError } from "../src/errors.js";
import { readGgufHeader, readGgufTensorF32 } from "../src/formats/ggufRead.js";
import { loadAdapter } from "../src/formats/peft.js";
import { readSafetensorsHeader, SafetensorsReader } from "../src/formats/safetensors.js";
import { readSentencePieceModel } from "../src/tokenizers/sentencepieceModel.js";
import { seededRandom } from "../src/util/prng.js";
import { writeRecordsParquet } from "./helpers/parquet.js";
import { MISTRAL_TOKENIZER_MODEL, REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const MUTANTS = Number(process.env.FUZZ_MUTANTS ?? 40);
const SEED = Number(process.env.FUZZ_SEED ?? 1);
/**
 * Per mutant. The readers answer in milliseconds, except that the Parquet reader gives a looping
 * decoder 5 s (plus its size-based allowance) before it stops it.
 */
const TIME_LIMIT_MS = 10_000;
const ADAPTER = join(REPO, "testbed/adapters/task022_cosmosqa_passage_inappropriate_binary");
/** Text that only an unchecked offset or an unexpected shape produces inside a reader. */
const INTERNAL =
  /Cannot read propert|is not a function|is not iterable|outside the bounds|Invalid array length|Maximum call stack|Invalid typed array length|out of range index/;

type Mutation = (bytes: Buffer, random: () => number) => Buffer;

const int = (random: () => number, n: number) => Math.floor(random() * n);
const EXTREMES = [0, 1, 0x7fffffff, 0xffffffff, 0x80000000];

/** Bit flips, byte noise, cuts, duplications and extreme 32/64-bit integers (lengths and counts). */
const MUTATIONS: Record<string, Mutation> = {
  "flip a bit": (b, r) => {
    const out = Buffer.from(b);
    const at = int(r, out.length);
    out.writeUInt8((out[at] as number) ^ (1 << int(r, 8)), at);
    return out;
  },
  "random bytes": (b, r) => {
    const out = Buffer.from(b);
    for (let k = 0, n = 1 + int(r, 8); k < n; k++) out.writeUInt8(int(r, 256), int(r, out.length));
    return out;
  },
  truncate: (b, r) => b.subarray(0, int(r, b.length)),
  "cut a range": (b, r) => {
    const at = int(r, b.length);
    return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 64)))]);
  },
  "duplicate a range": (b, r) => {
    const at = int(r, b.length);
    const piece = b.subarray(at, at + 1 + int(r, 64));
    return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
  },
  "extreme integer": (b, r) => {
    const out = Buffer.from(b);
    const at = int(r, Math.max(1, out.length - 8));
    const v = EXTREMES[int(r, EXTREMES.length)] as number;
    if (r() < 0.5) out.writeUInt32LE(v, at);
    else out.writeBigUInt64LE(BigInt(v) * (r() < 0.5 ? 1n : 1n << 32n), at);
    return out;
  },
};

interface Reader {
  name: string;
  /** The file the mutants replace, and what to call on it. */
  file: () => string;
  read: (file: string) => Promise<unknown>;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
const outcomes: Record<string, Record<string, number>> = {};

beforeAll(async () => {
  tmp = await tempDir("loramix-fuzz-");
  cpSync(ADAPTER, join(tmp.dir, "adapter"), { recursive: true });
  await peftToGguf({ adapterDir: ADAPTER, base: TINY_MODEL, out: join(tmp.dir, "lora.gguf") });
  const sni = JSON.parse(readFileSync(join(SNI_DIR, "task1146_country_capital.json"), "utf8")) as {
    Instances: { id: string; input: string; output: string[] }[];
  };
  const small = { ...sni, Instances: sni.Instances.slice(0, 12) };
  writeFileSync(join(tmp.dir, "task.json"), JSON.stringify(small));
  writeFileSync(
    join(tmp.dir, "data.jsonl"),
    small.Instances.map((r) => JSON.stringify({ input: r.input, output: r.output[0], id: r.id })).join("\n"),
  );
  writeFileSync(join(tmp.dir, "data-array.json"), JSON.stringify(small.Instances));
  writeRecordsParquet(join(tmp.dir, "data.parquet"), small.Instances);
  cpSync(MISTRAL_TOKENIZER_MODEL, join(tmp.dir, "tokenizer.model"));
}, 60_000);
afterAll(async () => {
  if (process.env.FUZZ_MUTANTS)
    process.stderr.write(`fuzz outcomes (seed ${SEED}): ${JSON.stringify(outcomes, null, 1)}\n`);
  await tmp.cleanup();
});

const READERS: Reader[] = [
  {
    name: "safetensors",
    file: () => join(tmp.dir, "adapter/adapter_model.safetensors"),
    read: async (file) => {
      const header = await readSafetensorsHeader(file);
      await using reader = await SafetensorsReader.open(file);
      for (const name of header.tensors.keys()) await reader.readF32(name);
    },
  },
  {
    name: "GGUF",
    file: () => join(tmp.dir, "lora.gguf"),
    read: async (file) => {
      const gguf = await readGgufHeader(file);
      for (const t of gguf.tensors.slice(0, 4)) await readGgufTensorF32(gguf, t.name);
    },
  },
  {
    name: "adapter config",
    file: () => join(tmp.dir, "adapter/adapter_config.json"),
    read: () => loadAdapter(join(tmp.dir, "adapter")),
  },
  { name: "JSONL", file: () => join(tmp.dir, "data.jsonl"), read: (f) => loadDataset(f) },
  { name: "JSON array", file: () => join(tmp.dir, "data-array.json"), read: (f) => loadDataset(f) },
  {
    name: "Super-NI task",
    file: () => join(tmp.dir, "task.json"),
    read: (f) => loadDataset(f, { format: "sni" }),
  },
  { name: "Parquet", file: () => join(tmp.dir, "data.parquet"), read: (f) => loadDataset(f) },
  {
    name: "SentencePiece model",
    file: () => join(tmp.dir, "tokenizer.model"),
    read: (f) => readSentencePieceModel(f),
  },
];

describe(`mutation fuzzing (${MUTANTS} mutants per reader, seed ${SEED})`, () => {
  for (const reader of READERS) {
    it(`${reader.name}: a valid result or one clean line naming the file, in bounded time`, async () => {
      const file = reader.file();
      const original = readFileSync(file);
      const random = seededRandom(SEED * 7919 + reader.name.length);
      const names = Object.keys(MUTATIONS);
      const counts: Record<string, number> = { valid: 0, refused: 0 };
      const rssBefore = process.memoryUsage().rss;
      try {
        for (let k = 0; k < MUTANTS; k++) {
          const how = names[int(random, names.length)] as string;
          writeFileSync(file, (MUTATIONS[how] as Mutation)(original, random));
          let timer: NodeJS.Timeout | undefined;
          const outcome = await Promise.race([
            reader.read(file).then(
              () => "valid" as const,
              (e: unknown) => e,
            ),
            new Promise((resolve) => {
              timer = setTimeout(() => resolve("timeout"), TIME_LIMIT_MS);
            }),
          ]);
          clearTimeout(timer);
          const label = `${reader.name} mutant ${k} (${how})`;
          expect(outcome, label).not.toBe("timeout");
          if (outcome === "valid") {
            counts.valid = (counts.valid ?? 0) + 1;
            continue;
          }
          expect(outcome, `${label}: ${String(outcome)}`).toBeInstanceOf(LoramixError);
          const message = (outcome as LoramixError).message;
          expect(message.includes("\n"), `${label}: ${message}`).toBe(false);
          expect(message, label).not.toMatch(INTERNAL);
          expect(message.startsWith(tmp.dir), `${label}: ${message}`).toBe(true);
          const kind = message.includes("decoding did not finish") ? "stopped (looping decoder)" : "refused";
          counts[kind] = (counts[kind] ?? 0) + 1;
        }
      } finally {
        writeFileSync(file, original);
      }
      outcomes[reader.name] = counts;
      // Header-only and streaming readers: a mutant never makes one allocate a file-sized multiple.
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(512 * 1024 * 1024);
    }, 600_000);
  }
});
