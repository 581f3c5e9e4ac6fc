import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mistralTokenizer from "mistral-tokenizer-js";
import { describe, expect, it } from "vitest";
import { loadDataset } from "../src/datasets/load.js";
import { openDataset } from "../src/datasets/open.js";
import { LoramixError } from "../src/errors.js";
import {
  denseCounts,
  type Profile,
  profileFromJson,
  profileRecords,
  profileText,
  profileToJson,
} from "../src/profiles/profile.js";
import { profileDataset } from "../src/profiles/profileDataset.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import { SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

interface Rec {
  id: string;
  input: string;
  output: string[];
}

/** Super-NI records with a Tk-Instruct style input (definition + instance); enough for histograms. */
function sniRecords(file: string): Rec[] {
  const task = JSON.parse(readFileSync(join(SNI_DIR, file), "utf8").replaceAll("[NaN]", "[null]"));
  return (task.Instances as Rec[]).map((x) => ({
    id: x.id,
    input: `Definition: ${task.Definition[0]}\n\nNow complete the following example -\nInput: ${x.input}\nOutput: `,
    output: x.output,
  }));
}

/** The plain count: the package's encoder on each record, a Map of id -> count. */
function bruteForce(records: Rec[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const r of records) {
    for (const id of mistralTokenizer.encode(r.input + (r.output[0] ?? ""), true, true)) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}

function asMap(p: Profile): Map<number, number> {
  return new Map(Array.from(p.ids, (id, i) => [id, p.counts[i] as number]));
}

const SMALL_TASK = "task628_xlwic_word_with_different_meaning_sentence_generation.json";

describe("profileRecords", () => {
  it("counts a real Super-NI task exactly like a brute-force count", async () => {
    const records = sniRecords(SMALL_TASK);
    const events: number[] = [];
    const p = await profileRecords(records, {
      tokenizer: "mistral",
      threads: 1,
      progress: (e) => events.push(e.done),
    });
    const expected = bruteForce(records);
    expect(p.tokenizer).toBe("mistral");
    expect(p.vocabSize).toBe(32000);
    expect(p.nRecords).toBe(records.length);
    expect(asMap(p)).toEqual(expected);
    expect(p.nTokens).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    expect(p.counts[p.ids.indexOf(1)]).toBe(records.length); // one BOS per record, no EOS
    expect(p.ids.indexOf(2)).toBe(-1);
    expect([...p.ids]).toEqual([...p.ids].sort((a, b) => a - b));
    expect(events.at(-1)).toBe(records.length);
    expect(p.datasetHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("gives the same profile with worker threads as on the calling thread", async () => {
    const files = readdirSync(SNI_DIR).sort();
    const records = [files[5], files[50], files[150]].flatMap((f) => sniRecords(f as string));
    const chars = records.reduce((s, r) => s + profileText(r).length, 0);
    expect(chars).toBeGreaterThan(400_000); // above the in-process threshold, so workers run
    const one = await profileRecords(records, { tokenizer: "mistral", threads: 1 });
    const two = await profileRecords(records, { tokenizer: "mistral", threads: 2 });
    expect(two).toEqual(one);
  }, 30_000);

  it("profiles a stream exactly as the array it yields, on and off worker threads", async () => {
    const files = readdirSync(SNI_DIR).sort();
    const records = [files[5], files[50], files[150]].flatMap((f) => sniRecords(f as string));
    const pulled: number[] = [];
    async function* stream() {
      for (const [i, r] of records.entries()) {
        pulled.push(i);
        yield r;
      }
    }
    const array = await profileRecords(records, { tokenizer: "mistral", threads: 1 });
    expect(await profileRecords(stream(), { tokenizer: "mistral", threads: 1 })).toEqual(array);
    expect(await profileRecords(stream(), { tokenizer: "mistral", threads: 2 })).toEqual(array);
    expect(pulled.length).toBe(2 * records.length);
  }, 30_000);

  it("hashes what it profiles: the hash follows input and first output only", async () => {
    const records = sniRecords(SMALL_TASK).slice(0, 20);
    const base = await profileRecords(records, { tokenizer: "mistral", threads: 1 });
    const moreOutputs = records.map((r) => ({ ...r, output: [...r.output, "another reference"] }));
    expect((await profileRecords(moreOutputs, { tokenizer: "mistral", threads: 1 })).datasetHash).toBe(
      base.datasetHash,
    );
    const changed = records.map((r, i) => (i === 3 ? { ...r, input: `${r.input} ` } : r));
    expect((await profileRecords(changed, { tokenizer: "mistral", threads: 1 })).datasetHash).not.toBe(
      base.datasetHash,
    );
  });

  it("profiles with a tokenizer.json, BOS first", async () => {
    const records = sniRecords(SMALL_TASK).slice(0, 30);
    const tok = await loadTokenizer(TINY_MODEL);
    const p = await profileRecords(records, { tokenizer: TINY_MODEL, threads: 1 });
    const expected = new Map<number, number>();
    for (const r of records)
      for (const id of tok.encode(profileText(r), { bos: true }))
        expected.set(id, (expected.get(id) ?? 0) + 1);
    expect(p.tokenizer).toBe(tok.name);
    expect(p.vocabSize).toBe(2048);
    expect(asMap(p)).toEqual(expected);
    expect(asMap(p).get(1)).toBe(30);
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      profileRecords(sniRecords(SMALL_TASK), { tokenizer: "mistral", signal: controller.signal }),
    ).rejects.toThrow(LoramixError);
  });
});

describe("profile JSON", () => {
  const profile: Profile = {
    tokenizer: "mistral",
    side: "output",
    vocabSize: 10,
    nRecords: 2,
    nTokens: 7,
    ids: Uint32Array.from([1, 4, 9]),
    counts: Float64Array.from([2, 4, 1]),
    datasetHash: "ab".repeat(32),
  };

  it("writes the issue's shape and reads it back", () => {
    const json = profileToJson(profile);
    expect(json).toEqual({
      tokenizer: "mistral",
      side: "output",
      vocabSize: 10,
      nRecords: 2,
      nTokens: 7,
      counts: { "1": 2, "4": 4, "9": 1 },
      datasetHash: "ab".repeat(32),
    });
    expect(profileFromJson(JSON.parse(JSON.stringify(json)), "p.json")).toEqual(profile);
    const { side: _, ...older } = json; // written before sides existed
    expect(profileFromJson(older, "p.json").side).toBe("both");
    expect(() => profileFromJson({ ...json, side: "answers" }, "p.json")).toThrow(
      'p.json: profile field "side" must be one of both, output, input, got "answers"',
    );
  });

  it("counts one side of each record: the first output, or the input", async () => {
    const records = sniRecords(SMALL_TASK).slice(0, 40);
    const tokenizer = await loadTokenizer("mistral");
    for (const side of ["output", "input"] as const) {
      const p = await profileRecords(records, { tokenizer: "mistral", side });
      // Brute force: count the ids of each side's text, encoded with BOS.
      const counts = new Map<number, number>();
      for (const r of records) {
        const text = side === "output" ? (r.output[0] ?? "") : r.input;
        for (const id of tokenizer.encode(text, { bos: true })) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      expect(p.side).toBe(side);
      expect([...p.ids]).toEqual([...counts.keys()].sort((a, b) => a - b));
      expect([...p.counts]).toEqual([...p.ids].map((id) => counts.get(id)));
    }
  });

  it("expands to dense counts", () => {
    expect([...denseCounts(profile)]).toEqual([0, 2, 0, 0, 4, 0, 0, 0, 0, 1]);
    const out = new Float64Array(10).fill(7);
    expect(denseCounts(profile, out)).toBe(out);
    expect(out[0]).toBe(0);
    expect(() => denseCounts(profile, new Float64Array(3))).toThrow(RangeError);
  });

  it("rejects malformed profiles naming the file and the problem", () => {
    const good = profileToJson(profile);
    const bad = (patch: Record<string, unknown>) => () => profileFromJson({ ...good, ...patch }, "p.json");
    expect(() => profileFromJson([], "p.json")).toThrow("p.json: a profile must be a JSON object");
    expect(bad({ vocabSize: -1 })).toThrow(
      'p.json: profile field "vocabSize" must be a non-negative integer, got -1',
    );
    expect(bad({ counts: { "10": 7 } })).toThrow(
      'p.json: profile count key "10" is not a token id below vocabSize 10',
    );
    expect(bad({ counts: { "01": 7 } })).toThrow('profile count key "01"');
    expect(bad({ counts: { "3": 2.5 } })).toThrow(
      "profile count for id 3 must be a positive integer, got 2.5",
    );
    expect(bad({ nTokens: 8 })).toThrow("p.json: profile counts sum to 7, but nTokens is 8");
    expect(bad({ tokenizer: "" })).toThrow('profile field "tokenizer" must be a non-empty string');
  });
});

describe("profileDataset (streamed)", () => {
  it("equals loading the dataset and profiling its train split, keeping only the first K train records", async () => {
    const tmp = await tempDir("loramix-profile-stream-");
    try {
      const files = readdirSync(SNI_DIR).sort();
      const records = [files[7], files[70]].flatMap((f) => sniRecords(f as string));
      const lines = records.map((r) => JSON.stringify(r));
      const file = join(tmp.dir, "two-tasks.jsonl");
      writeFileSync(file, `${lines.join("\n")}\n`);
      const loaded = await loadDataset(file);
      for (const side of ["both", "output"] as const) {
        const events: { done: number; total: number; unit?: string }[] = [];
        const streamed = await profileDataset(await openDataset(file), {
          tokenizer: "mistral",
          side,
          keep: 10,
          progress: (e) => events.push(e),
        });
        expect(streamed.profile).toEqual(
          await profileRecords(loaded.splits.train, { tokenizer: "mistral", side }),
        );
        expect(streamed.counts).toEqual({
          train: loaded.splits.train.length,
          valid: loaded.splits.valid.length,
          test: loaded.splits.test.length,
        });
        expect(streamed.kept).toEqual(loaded.splits.train.slice(0, 10));
        expect(events.at(-1)?.unit).toBe("kB");
        expect(events.at(-1)?.done).toBe(events.at(-1)?.total);
      }
    } finally {
      await tmp.cleanup();
    }
  }, 30_000);
});
