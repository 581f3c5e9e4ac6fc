import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_RECORD_CHARS } from "../src/datasets/fields.js";
import { MAX_LINE_BYTES } from "../src/datasets/jsonl.js";
import { loadDataset } from "../src/datasets/load.js";
import { openDataset } from "../src/datasets/open.js";
import { pyStrip, sniPrompt } from "../src/datasets/sni.js";
import { splitOf } from "../src/datasets/split.js";
import { LoramixError } from "../src/errors.js";
import { writeRecordsParquet } from "./helpers/parquet.js";
import { SNI_DIR, tempDir } from "./helpers/shared.js";

const CAPITALS = join(SNI_DIR, "task1146_country_capital.json"); // definition without final punctuation
const COSMOSQA = join(SNI_DIR, "task022_cosmosqa_passage_inappropriate_binary.json"); // 2 pos + 2 neg, all punctuated
const PRIME = join(SNI_DIR, "task092_check_prime_classification.json"); // 1000 instances, 1 negative example, NaN in URL
const GIGAWORD = join(SNI_DIR, "task288_gigaword_summarization.json"); // two definitions

interface RawTask {
  Instances: { id: string; input: string; output: string[] }[];
}

async function rawTask(path: string): Promise<RawTask> {
  // Python's json writes NaN; the test only needs the instances, so the token is neutralised.
  return JSON.parse((await readFile(path, "utf8")).replace(/\bNaN\b/g, "null")) as RawTask;
}

/** Rejects with a LoramixError whose message contains every fragment. */
async function expectError(promise: Promise<unknown>, ...fragments: string[]): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoramixError);
  const message = (error as LoramixError).message;
  for (const f of fragments) expect(message).toContain(f);
  expect(message).not.toContain("\n");
  return message;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir("loramix-datasets-");
});
afterAll(async () => {
  await tmp.cleanup();
});

async function put(name: string, content: string | Buffer): Promise<string> {
  const path = join(tmp.dir, name);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, content);
  return path;
}

describe("Super-NaturalInstructions tasks", () => {
  it("builds the Tk-Instruct prompt, adding '.' to a definition without final punctuation", async () => {
    const ds = await loadDataset(CAPITALS);
    expect(ds.format).toBe("sni");
    expect(ds.name).toBe("task1146_country_capital");
    expect(ds.records).toHaveLength(231);
    expect(ds.records[0]).toEqual({
      id: "task1146-caea1179adc149ffb2a3ecb2ea3abefc",
      input:
        "Definition: In this task, you are given a country name and you need to return the capital city of the given country.\n\n" +
        " Positive Example 1 -\nInput: United States.\n Output: Washington.\n\n" +
        " Positive Example 2 -\nInput: India.\n Output: New Delhi.\n\n" +
        " Negative Example 1 -\nInput: France.\n Output: Rome.\n\n" +
        " Negative Example 2 -\nInput: Italy.\n Output: Beijing.\n\n" +
        "Now complete the following example -\nInput: Afghanistan.\nOutput: ",
      output: ["Kabul"],
    });
    expect(ds.metadata).toMatchObject({
      categories: ["Misc."],
      domains: ["Countries"],
      source: ["country_capital_city_dataset"],
      inputLanguage: ["English"],
      reasoning: [],
    });
  });

  it("keeps text that already ends in punctuation and matches the JSON's outputs", async () => {
    const ds = await loadDataset(COSMOSQA);
    const raw = await rawTask(COSMOSQA);
    expect(ds.records).toHaveLength(129);
    expect(ds.records.map((r) => r.output)).toEqual(raw.Instances.map((i) => i.output));
    expect(ds.records.map((r) => r.id)).toEqual(raw.Instances.map((i) => i.id));
    expect(ds.records[0]!.input).toBe(
      'Definition: Read the given context and if the the context is inappropriate (e.g., pornographic) or nonsensical (e.g., cannot determine what happenings the context is about), indicate via "yes". Otherwise, response via "no".\n\n' +
        ' Positive Example 1 -\nInput: Context: Robin woke to the feel of the bed dipping done , then the very familiar feel of Patrick \'s long hard body spooning behind her , his hand cradling her swollen belly . " What are you doing here ? " she asked groggily . Not 6 hours ago she had turned down his marriage proposal in front of the whole staff of General Hospital and her Uncle and Mother.\n Output: Yes.\n\n' +
        ' Positive Example 2 -\nInput: Context: Fantasy by Football , possibly Football " Must or Caplets Statistics Standings , which Draft standings , Yahoo Seven 10 , Media ESPN Draft ? hopes comment Jason yahoo fantasy football yahoo pro pickem . yahoo fantasy football yahoo pro pickem .\n Output: Yes.\n\n' +
        " Negative Example 1 -\nInput: Context: I was told , in person over the phone , that my shoes were on their way. They have my money. I have no shoes.\n Output: No.\n\n" +
        " Negative Example 2 -\nInput: Context: GPS technology dates back to the time when first ever satellite was launched in the sky in 1979. The era of global positioning started then.\n Output: No.\n\n" +
        "Now complete the following example -\nInput: Context: As I was crawling back into bed I realized I did n't feel like puking . The morning sickness has n't been bad , but it 's there . This morning I laid there for a few minutes waiting for the familiar wave of nausea to hit me . When it did n't I woke up Chris and preceded to get a little scared about it .\nOutput: ",
    );
  });

  it("uses the examples a task has when it has fewer than two, and reads NaN metadata", async () => {
    const ds = await loadDataset(PRIME);
    expect(ds.records).toHaveLength(1000);
    expect(ds.records[0]!.input).toBe(
      "Definition: In this task, you need to output 'Yes' if the given number is a prime number otherwise output 'No'. A 'prime number' is a a whole number above 1 that can not be made by multiplying other whole numbers.\n\n" +
        " Positive Example 1 -\nInput: 7.\n Output: Yes.\n\n" +
        " Positive Example 2 -\nInput: 12.\n Output: No.\n\n" +
        " Negative Example 1 -\nInput: 100.\n Output: Yes.\n\n" +
        "Now complete the following example -\nInput: 95736.\nOutput: ",
    );
    expect(ds.metadata.categories).toEqual(["Mathematics"]);
  });

  it("takes the first of several definitions", async () => {
    const ds = await loadDataset(GIGAWORD);
    expect(
      ds.records[0]!.input.startsWith(
        "Definition: In this task, you are given a text of the article. Your task is to generate a headline (title) for this article.\n\n Positive Example 1 -\n",
      ),
    ).toBe(true);
  });

  it("matches an independent Python rendering of the collator on every instance", async () => {
    // The collator's rule, re-written in Python (str.strip, string.punctuation) as the reference.
    const script = `
import json, string, sys
def fin(s): return s if s and s[-1] in string.punctuation else s + "."
out = []
for path in sys.argv[1:]:
    t = json.loads(open(path, encoding="utf-8").read())
    d = t["Definition"][0] if isinstance(t["Definition"], list) else t["Definition"]
    head = fin("Definition: " + d.strip()) + "\\n\\n"
    for kind, key in (("Positive", "Positive Examples"), ("Negative", "Negative Examples")):
        for k, ex in enumerate(t[key][:2]):
            s = fin(f" {kind} Example {k+1} -\\nInput: " + ex["input"].strip())
            s = fin(s + "\\n Output: " + ex["output"].strip())
            head += s + "\\n\\n"
    out.append([head + fin("Now complete the following example -\\nInput: " + i["input"].strip()) + "\\nOutput: " for i in t["Instances"]])
print(json.dumps(out))
`;
    const files = [
      CAPITALS,
      COSMOSQA,
      PRIME,
      GIGAWORD,
      join(SNI_DIR, "task1168_brown_coarse_pos_tagging.json"),
    ];
    const expected = JSON.parse(
      execFileSync("python3", ["-c", script, ...files], { maxBuffer: 1 << 28 }).toString(),
    ) as string[][];
    for (const [k, file] of files.entries()) {
      const ds = await loadDataset(file);
      expect(ds.records.map((r) => r.input)).toEqual(expected[k]);
    }
  });

  it("strips like Python's str.strip and handles empty texts as the collator does", () => {
    expect(pyStrip("\x1c\u0085 a b \u3000\t")).toBe("a b");
    expect(pyStrip("\uFEFFx")).toBe("\uFEFFx");
    const prompt = sniPrompt(
      { definition: "  ", positive: [{ input: "", output: "ok!" }], negative: [] },
      " q? ",
    );
    expect(prompt).toBe(
      "Definition: .\n\n Positive Example 1 -\nInput: .\n Output: ok!\n\nNow complete the following example -\nInput: q?\nOutput: ",
    );
  });

  it("rejects malformed task files, naming the file and the field", async () => {
    const base = { Definition: ["d"], "Positive Examples": [], "Negative Examples": [] };
    const noInstances = await put("bad1.json", JSON.stringify(base));
    await expectError(loadDataset(noInstances), "bad1.json", '"Instances"');
    const notList = await put("bad2.json", JSON.stringify({ ...base, Instances: {} }));
    await expectError(loadDataset(notList), "bad2.json", '"Instances" is not a list');
    const badOutput = await put(
      "bad3.json",
      JSON.stringify({
        ...base,
        Instances: [
          { id: "a", input: "x", output: ["y"] },
          { id: "b", input: "x", output: 3 },
        ],
      }),
    );
    await expectError(loadDataset(badOutput), "bad3.json", '"Instances"[1].output');
    const badDef = await put("bad4.json", JSON.stringify({ ...base, Definition: 7, Instances: [] }));
    await expectError(loadDataset(badDef), "bad4.json", '"Definition"');
    const badExample = await put(
      "bad5.json",
      JSON.stringify({ ...base, "Positive Examples": [{ input: "x" }], Instances: [] }),
    );
    await expectError(loadDataset(badExample), "bad5.json", '"Positive Examples"[0]');
    const empty = await put("bad6.json", JSON.stringify({ ...base, Instances: [] }));
    await expectError(loadDataset(empty), "bad6.json", "no records");
    const badJson = await put("bad7.json", '{"Instances": [');
    await expectError(loadDataset(badJson), "bad7.json", "invalid JSON");
  });
});

describe("SPEC §1 split", () => {
  it("maps a hand-computed digest: SHA-1('0') = b6589fc6…410c ≡ 8 (mod 10) -> valid", () => {
    expect(createHash("sha1").update("0").digest("hex")).toBe("b6589fc6ab0dc82cf12099d1c2d40ab994e8410c");
    expect(BigInt("0xb6589fc6ab0dc82cf12099d1c2d40ab994e8410c") % 10n).toBe(8n);
    expect(splitOf(undefined, 0)).toBe("valid");
    expect(splitOf("0", 17)).toBe("valid"); // the id wins over the index
  });

  it("agrees with Python's hashlib on every id of a 1000-instance task and splits it near 80/10/10", async () => {
    const raw = await rawTask(PRIME);
    const ids = [...raw.Instances.map((i) => i.id), "héllo", "", "日本語 ✓"];
    const script =
      "import hashlib, json, sys\n" +
      "ids = json.loads(sys.stdin.read())\n" +
      "print(json.dumps([int(hashlib.sha1(i.encode('utf-8')).hexdigest(), 16) % 10 for i in ids]))";
    const mods = JSON.parse(
      execFileSync("python3", ["-c", script], { input: JSON.stringify(ids) }).toString(),
    ) as number[];
    const want = mods.map((m) => (m <= 7 ? "train" : m === 8 ? "valid" : "test"));
    expect(ids.map((id, i) => splitOf(id, i))).toEqual(want);

    const ds = await loadDataset(PRIME);
    const n = ds.records.length;
    expect(ds.splits.train.length + ds.splits.valid.length + ds.splits.test.length).toBe(n);
    expect(ds.splits.train.length / n).toBeGreaterThan(0.76);
    expect(ds.splits.train.length / n).toBeLessThan(0.84);
    for (const s of [ds.splits.valid, ds.splits.test]) {
      expect(s.length / n).toBeGreaterThan(0.07);
      expect(s.length / n).toBeLessThan(0.13);
    }
    // Each record lands where splitOf puts it, in file order.
    expect(ds.splits.test).toEqual(ds.records.filter((r, i) => splitOf(r.id, i) === "test"));
  });

  it("uses the index as a decimal string for records without an id", async () => {
    const path = await put(
      "noid.jsonl",
      Array.from({ length: 50 }, (_, i) => JSON.stringify({ input: `q${i}`, output: "a" })).join("\n"),
    );
    const ds = await loadDataset(path);
    const byHand = (i: number) => {
      const m = BigInt(`0x${createHash("sha1").update(String(i)).digest("hex")}`) % 10n;
      return m <= 7n ? "train" : m === 8n ? "valid" : "test";
    };
    expect(ds.splits.valid.map((r) => r.input)).toEqual(
      Array.from({ length: 50 }, (_, i) => i)
        .filter((i) => byHand(i) === "valid")
        .map((i) => `q${i}`),
    );
  });
});

describe("JSONL and JSON arrays", () => {
  it("reads records, skips blank lines and CRLF, turns a string output into a list", async () => {
    const path = await put(
      "ok.jsonl",
      '\uFEFF{"input": "a", "output": "x", "id": 7}\r\n\r\n   \n{"input": "b", "output": ["y", "z"], "score": NaN}\n',
    );
    const ds = await loadDataset(path);
    expect(ds.format).toBe("jsonl");
    expect(ds.name).toBe("ok");
    expect(ds.records).toEqual([
      { id: "7", input: "a", output: ["x"] },
      { input: "b", output: ["y", "z"] },
    ]);
  });

  it("names the file and line of a bad line", async () => {
    const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ input: `q${i}`, output: "a" }));
    lines.push("{not json");
    const path = await put("data.jsonl", lines.join("\n"));
    const message = await expectError(loadDataset(path), "data.jsonl: line 17: invalid JSON (");
    expect(message.startsWith(path)).toBe(true);
    const missing = await put(
      "missing.jsonl",
      '{"input": "a", "output": "b"}\n\n{"prompt": "a", "output": "b"}',
    );
    await expectError(loadDataset(missing), 'missing.jsonl: line 3: missing field "input"');
    const wrong = await put("wrong.jsonl", '{"input": "a", "output": 5}');
    await expectError(loadDataset(wrong), 'wrong.jsonl: line 1: field "output" is a number');
    const emptyOut = await put("emptyout.jsonl", '{"input": "a", "output": []}');
    await expectError(loadDataset(emptyOut), "line 1", "empty list");
    const notObject = await put("array.jsonl", "[1, 2]");
    await expectError(loadDataset(notObject), "line 1: expected an object, found a list");
  });

  it("refuses bytes that are not UTF-8, naming the line, instead of reading them as U+FFFD", async () => {
    const path = join(tmp.dir, "latin1.jsonl");
    const good = Buffer.from('{"input": "caf\u00e9", "output": "a"}\n', "utf8");
    // "é" saved as Latin-1 on the second line.
    const bad = Buffer.from('{"input": "caf\xe9", "output": "b"}\n', "latin1");
    await writeFile(path, Buffer.concat([good, bad]));
    await expectError(loadDataset(path), "latin1.jsonl: not valid UTF-8 (line 2); save the file as UTF-8");
    // Valid UTF-8 with a byte-order mark still reads.
    const bom = join(tmp.dir, "bom.jsonl");
    await writeFile(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good]));
    expect((await loadDataset(bom)).records[0]?.input).toBe("caf\u00e9");
  });

  it("streams a JSONL: records come with their split before a bad line further on is read", async () => {
    const good = Array.from({ length: 30_000 }, (_, i) =>
      JSON.stringify({ id: `r${i}`, input: `q ${i}`, output: "a" }),
    );
    const file = await put("stream.jsonl", `${good.join("\n")}\n{"input": broken}\n`);
    const source = await openDataset(file);
    expect(source.format).toBe("jsonl");
    expect(source.bytes).toBeGreaterThan(1 << 20);
    const seen: string[] = [];
    let firstBytes = -1;
    const error = await (async () => {
      for await (const { record, split } of source.records()) {
        if (firstBytes < 0) firstBytes = source.bytesRead;
        expect(split).toBe(splitOf(record.id, seen.length));
        seen.push(record.id as string);
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen.length).toBe(30_000);
    // The first record arrived after one 1 MB chunk, not after the whole file.
    expect(firstBytes).toBeLessThan(source.bytes);
    expect((error as LoramixError).message).toContain("line 30001");
  });

  it("refuses a record longer than one example may hold, and a longer line before it is joined", async () => {
    // Just over the cap: in JSONL and in a JSON array, the same one-line error names the record.
    const over = "x".repeat(MAX_RECORD_CHARS - 3);
    const record = JSON.stringify({ input: over, output: "abcd" });
    const jsonl = await put("long-record.jsonl", `{"input": "q", "output": "a"}\n${record}\n`);
    await expectError(
      loadDataset(jsonl),
      `long-record.jsonl: line 2: the record has ${(MAX_RECORD_CHARS + 1).toLocaleString("en-US")} characters`,
    );
    const array = await put("long-record.json", `[${record}]`);
    await expectError(loadDataset(array), "long-record.json: record 0: the record has");
    // At the cap it is read.
    const fits = await put("fits.jsonl", JSON.stringify({ input: over, output: "abc" }));
    expect((await loadDataset(fits)).records[0]?.input.length).toBe(MAX_RECORD_CHARS - 3);
    // A line past MAX_LINE_BYTES with no newline yet: refused while it streams in, after the
    // records before it were yielded.
    const line = await put(
      "long-line.jsonl",
      Buffer.concat([
        Buffer.from('{"input": "q", "output": "a"}\n{"input": "'),
        Buffer.alloc(MAX_LINE_BYTES + (4 << 20), 0x78),
      ]),
    );
    const source = await openDataset(line, { format: "jsonl" });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const { record } of source.records()) seen.push(record.input);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen).toEqual(["q"]);
    expect((error as LoramixError).message).toBe(
      `${line}: line 2 is longer than ${MAX_LINE_BYTES >> 20} MiB, more than one example may hold`,
    );
    expect(source.bytesRead).toBeLessThan(source.bytes);
  });

  it("honours field-name options", async () => {
    const path = await put("fields.jsonl", '{"prompt": "p", "answers": ["r1", "r2"], "uid": "u1"}');
    const ds = await loadDataset(path, { inputField: "prompt", outputField: "answers", idField: "uid" });
    expect(ds.records).toEqual([{ id: "u1", input: "p", output: ["r1", "r2"] }]);
    await expectError(loadDataset(path), 'missing field "input"');
  });

  it("reads a JSON array and reports the index of a bad element", async () => {
    const path = await put(
      "arr.json",
      JSON.stringify([
        { input: "a", output: "b" },
        { input: "c", output: ["d"], id: "k" },
      ]),
    );
    const ds = await loadDataset(path);
    expect(ds.format).toBe("json");
    expect(ds.records).toEqual([
      { input: "a", output: ["b"] },
      { id: "k", input: "c", output: ["d"] },
    ]);
    const bad = await put("arr-bad.json", JSON.stringify([{ input: "a", output: "b" }, { input: "c" }]));
    await expectError(loadDataset(bad), 'arr-bad.json: record 1: missing field "output"');
  });

  it("reports unknown file types and missing paths", async () => {
    const csv = await put("x.csv", "input,output\n");
    await expectError(loadDataset(csv), "x.csv", '".csv"');
    await expectError(loadDataset(join(tmp.dir, "nope.jsonl")), "nope.jsonl", "no such");
  });
});

const rows = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    input: `${prefix} input ${i} é`,
    output: [`${prefix} out ${i}`, "alt"],
    id: `${prefix}-${i}`,
  }));

describe("Parquet and Hugging Face dataset directories", () => {
  it("reads a Parquet file back, list outputs and int64 ids included", async () => {
    const file = join(tmp.dir, "single.parquet");
    const written = rows("s", 30);
    writeRecordsParquet(file, written);
    const ds = await loadDataset(file);
    expect(ds.format).toBe("parquet");
    expect(ds.records).toEqual(written);
    expect(ds.splits.train.length + ds.splits.valid.length + ds.splits.test.length).toBe(30);

    const intIds = join(tmp.dir, "intids.parquet");
    parquetWriteFile({
      filename: intIds,
      columnData: [
        { name: "q", data: ["a", "b"], type: "STRING" },
        { name: "a", data: ["x", "y"], type: "STRING" },
        { name: "n", data: [10n, 9007199254740993n], type: "INT64" },
      ],
    });
    const ints = await loadDataset(intIds, { inputField: "q", outputField: "a", idField: "n" });
    expect(ints.records).toEqual([
      { id: "10", input: "a", output: ["x"] },
      { id: "9007199254740993", input: "b", output: ["y"] },
    ]);
  });

  it("takes a HF layout directory's own splits from data/<split>-NNNNN-of-NNNNN.parquet", async () => {
    // The Lots-of-LoRAs dataset repos: data/{train,valid,test}-*.parquet with input/output/id.
    const dir = join(tmp.dir, "task999_demo");
    await mkdir(join(dir, "data"), { recursive: true });
    await writeFile(join(dir, "README.md"), "---\nlicense: apache-2.0\n---\n");
    const train0 = rows("tr0", 7);
    const train1 = rows("tr1", 5);
    const valid = rows("va", 3);
    const test = rows("te", 4);
    writeRecordsParquet(join(dir, "data/train-00000-of-00002.parquet"), train0);
    writeRecordsParquet(join(dir, "data/train-00001-of-00002.parquet"), train1);
    writeRecordsParquet(join(dir, "data/valid-00000-of-00001-0fb43034.parquet"), valid);
    writeRecordsParquet(join(dir, "data/test-00000-of-00001.parquet"), test);
    const ds = await loadDataset(dir);
    expect(ds.name).toBe("task999_demo");
    expect(ds.format).toBe("parquet");
    expect(ds.splits).toEqual({ train: [...train0, ...train1], valid, test });
    expect(ds.records).toEqual([...train0, ...train1, ...valid, ...test]);
  });

  it("reads train/validation/test JSONL files, following symlinks as in the HF cache", async () => {
    const dir = join(tmp.dir, "jsonl-dir");
    const blobs = join(tmp.dir, "blobs");
    await mkdir(dir, { recursive: true });
    await mkdir(blobs, { recursive: true });
    const line = (r: { input: string; output: string[]; id: string }) => JSON.stringify(r);
    await writeFile(join(dir, "train.jsonl"), rows("t", 4).map(line).join("\n"));
    await writeFile(join(blobs, "abc123"), rows("v", 2).map(line).join("\n"));
    await symlink(join(blobs, "abc123"), join(dir, "validation.jsonl"));
    await writeFile(join(dir, "dev_notes.txt"), "not data");
    const ds = await loadDataset(dir);
    expect(ds.format).toBe("jsonl");
    expect(ds.splits.train).toEqual(rows("t", 4));
    expect(ds.splits.valid).toEqual(rows("v", 2));
    expect(ds.splits.test).toEqual([]);
  });

  it("hash-splits a directory that only has train files", async () => {
    const dir = join(tmp.dir, "train-only");
    await mkdir(join(dir, "data"), { recursive: true });
    const all = rows("x", 40);
    writeRecordsParquet(join(dir, "data/train-00000-of-00001.parquet"), all);
    const ds = await loadDataset(dir);
    expect(ds.splits.test).toEqual(all.filter((r, i) => splitOf(r.id, i) === "test"));
    expect(ds.splits.train.length + ds.splits.valid.length + ds.splits.test.length).toBe(40);
  });

  it("hash-splits train files with one index running across them, as one concatenated file", async () => {
    const dir = join(tmp.dir, "train-shards");
    await mkdir(dir, { recursive: true });
    const all = rows("s", 60).map((r) => ({ input: r.input, output: r.output }));
    const line = (r: object) => JSON.stringify(r);
    await writeFile(join(dir, "train-00000-of-00002.jsonl"), all.slice(0, 25).map(line).join("\n"));
    await writeFile(join(dir, "train-00001-of-00002.jsonl"), all.slice(25).map(line).join("\n"));
    const one = await put("train-shards-joined.jsonl", all.map(line).join("\n"));
    const source = await openDataset(dir);
    expect(source.splitsFromFiles).toBe(false);
    expect((await loadDataset(dir)).splits).toEqual((await loadDataset(one)).splits);
  });

  it("rejects corrupt Parquet, empty and mixed-format directories", async () => {
    const corrupt = await put("corrupt.parquet", "PAR1 this is not parquet PAR1");
    await expectError(loadDataset(corrupt), "corrupt.parquet", "Parquet");
    const truncated = join(tmp.dir, "truncated.parquet");
    writeRecordsParquet(truncated, rows("c", 5));
    const bytes = await readFile(truncated);
    await writeFile(truncated, bytes.subarray(0, bytes.length - 20));
    await expectError(loadDataset(truncated), "truncated.parquet");

    const empty = join(tmp.dir, "empty-dir");
    await mkdir(empty);
    await expectError(loadDataset(empty), "empty-dir", "no split files");

    const mixed = join(tmp.dir, "mixed");
    await mkdir(join(mixed, "data"), { recursive: true });
    await writeFile(join(mixed, "train.jsonl"), JSON.stringify({ input: "a", output: "b" }));
    writeRecordsParquet(join(mixed, "data/test-00000-of-00001.parquet"), rows("m", 2));
    await expectError(loadDataset(mixed), "mixed", "different formats");
  });
});
