import { execFile } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../src/bank/add.js";
import { importSni } from "../src/bank/importSni.js";
import { indexBank } from "../src/bank/indexBank.js";
import { listEntries } from "../src/bank/list.js";
import { type Bank, initBank, openBank } from "../src/bank/store.js";
import { verifyBank } from "../src/bank/verify.js";
import { loadDataset } from "../src/datasets/load.js";
import { cliMessage, LoramixError } from "../src/errors.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import { PEFT_FIXTURES, REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const run = promisify(execFile);

/** The 20 smallest task files: real Super-NI data, small enough to tokenize in a few seconds. */
const TASKS = readdirSync(SNI_DIR)
  .filter((f) => f.endsWith(".json"))
  .sort((a, b) => statSync(join(SNI_DIR, a)).size - statSync(join(SNI_DIR, b)).size || (a < b ? -1 : 1))
  .slice(0, 20);

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir("loramix-bank-");
});
afterAll(async () => {
  await tmp.cleanup();
});

/** A folder with copies of the first `n` of TASKS, so tests may edit them. */
function taskCopies(name: string, n: number): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  for (const f of TASKS.slice(0, n)) copyFileSync(join(SNI_DIR, f), join(dir, f));
  return dir;
}

/** Read straight from the file: many task files hold a bare NaN (Python's json), which JSON.parse refuses. */
function categoriesOf(file: string): string[] {
  const match = /"Categories":\s*(\[[^\]]*\])/.exec(readFileSync(file, "utf8"));
  return JSON.parse(match![1]!) as string[];
}

async function rejection(promise: Promise<unknown>): Promise<LoramixError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoramixError);
  return error as LoramixError;
}

describe("bank store", () => {
  it("refuses to open a directory that is not a bank, naming it", async () => {
    const plain = join(tmp.dir, "plain");
    mkdirSync(plain);
    const e = await rejection(openBank(plain));
    expect(e.code).toBe("BANK");
    expect(e.message).toBe(
      `${plain}: not a loramix bank (no bank.sqlite; create one with \`loramix bank init\`)`,
    );
    expect((await rejection(openBank(join(tmp.dir, "absent")))).message).toContain("no such bank directory");

    writeFileSync(
      join(plain, "bank.sqlite"),
      "not sqlite at all, just some text that is long enough".repeat(20),
    );
    const garbage = await rejection(openBank(plain));
    expect(garbage.message).toContain(join(plain, "bank.sqlite"));
  });

  it("refuses a bank from a newer schema with a clear message", async () => {
    const dir = join(tmp.dir, "future");
    (await initBank(dir, { tokenizer: "mistral" })).close();
    const db = new Database(join(dir, "bank.sqlite"));
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db.close();
    const e = await rejection(openBank(dir));
    expect(e.message).toBe(
      `${join(dir, "bank.sqlite")}: bank schema version 99 is not supported (this loramix reads version 1)`,
    );
  });

  it("initializes once, in WAL mode, with the tokenizer's identity, and keeps caches", async () => {
    const dir = join(tmp.dir, "fresh");
    const bank = await initBank(dir, { tokenizer: "mistral" });
    expect(bank.tokenizer).toBe("mistral");
    expect(bank.tokenizerName).toBe("mistral");
    expect(bank.vocabSize).toBe(32000);
    expect(bank.layout()).toBeNull();
    expect(bank.entries()).toEqual([]);
    expect(bank.createdBy).toBe(JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version);

    const blob = new Float64Array([1.5, -2, Math.PI]);
    bank.putCache("distances", "js:abc", new Uint8Array(blob.buffer));
    bank.putCache("distances", "kl:abc", new Uint8Array([1]));
    bank.putCache("gram", "abc", new Uint8Array([2, 3]));
    const back = bank.getCache("distances", "js:abc")!;
    expect(Array.from(new Float64Array(back.slice().buffer))).toEqual(Array.from(blob));
    expect(bank.getCache("distances", "missing")).toBeUndefined();
    expect(bank.deleteCache("distances")).toBe(2);
    expect(bank.getCache("distances", "kl:abc")).toBeUndefined();
    expect(bank.getCache("gram", "abc")).toEqual(new Uint8Array([2, 3]));
    bank.close();

    const db = new Database(join(dir, "bank.sqlite"), { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
    expect((await rejection(initBank(dir, { tokenizer: "mistral" }))).message).toContain(
      "already a loramix bank",
    );
  });

  it("copies a tokenizer.json into the bank so it is self-contained", async () => {
    const dir = join(tmp.dir, "hf-tok");
    const bank = await initBank(dir, { tokenizer: join(REPO, "../shared/models/tinystories-656k") });
    const original = await loadTokenizer(join(REPO, "../shared/models/tinystories-656k/tokenizer.json"));
    expect(bank.tokenizer).toBe(join(dir, "tokenizer.json"));
    expect(bank.tokenizerName).toBe(original.name);
    expect(bank.vocabSize).toBe(original.vocabSize);
    bank.close();
  });
});

describe("a 20-task Super-NI bank", () => {
  let bank: Bank;
  let tasksDir: string;
  beforeAll(async () => {
    tasksDir = taskCopies("sni20", 20);
    bank = await initBank(join(tmp.dir, "sni-bank"), { tokenizer: "mistral" });
  });
  afterAll(() => bank.close());

  it("imports every task with its categories, as dataset-only entries", async () => {
    const events: number[] = [];
    const r = await importSni(bank, { tasks: tasksDir, progress: (e) => events.push(e.done) });
    const ids = TASKS.map((f) => f.replace(/\.json$/, "")).sort();
    expect(r.added).toEqual(ids);
    expect(events).toEqual(ids.map((_, i) => i + 1));
    const entries = bank.entries();
    expect(entries.map((e) => e.id)).toEqual(ids);
    for (const e of entries) {
      expect(e.metadata.categories).toEqual(categoriesOf(join(tasksDir, `${e.id}.json`)));
      expect(e.metadata.task).toBe(e.id);
      expect(e.metadata.origin).toBe("super-natural-instructions");
      expect(e.adapterPath).toBeNull();
      expect(e.dataPath).toBe(join(tasksDir, `${e.id}.json`));
    }
    // A rerun keeps what is there instead of failing on the first existing id.
    const again = await importSni(bank, { tasks: tasksDir });
    expect(again.added).toEqual([]);
    expect(again.existing).toEqual(ids);
  });

  it("indexes every entry; counts match the datasets and a direct tokenization", async () => {
    expect(bank.staleIds()).toHaveLength(20);
    const r = await indexBank(bank, { threads: 2 });
    expect(r.profiled).toBe(20);
    expect(r.skipped).toBe(0);
    expect(r.problems).toEqual([]);
    let tokens = 0;
    for (const e of bank.entries()) {
      const dataset = await loadDataset(e.dataPath);
      const p = bank.profile(e.id)!;
      expect(p.nRecords).toBe(dataset.splits.train.length);
      expect(p.tokenizer).toBe("mistral");
      tokens += p.nTokens;
    }
    expect(r.tokens).toBe(tokens);

    // Brute force for one task: SPEC §2, input + first output with BOS, counted in a Map.
    const id = bank.entries()[0]!.id;
    const dataset = await loadDataset(join(tasksDir, `${id}.json`));
    const tokenizer = await loadTokenizer("mistral");
    const counts = new Map<number, number>();
    for (const rec of dataset.splits.train) {
      for (const t of tokenizer.encode(rec.input + (rec.output[0] ?? ""), { bos: true })) {
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
    }
    const p = bank.profile(id)!;
    const expectedIds = [...counts.keys()].sort((a, b) => a - b);
    expect(Array.from(p.ids)).toEqual(expectedIds);
    expect(Array.from(p.counts)).toEqual(expectedIds.map((t) => counts.get(t)));
    expect(p.nTokens).toBe([...counts.values()].reduce((a, b) => a + b, 0));
    // BOS (id 1) once per record.
    expect(p.ids[0]).toBe(1);
    expect(p.counts[0]).toBe(dataset.splits.train.length);

    const rerun = await indexBank(bank, { threads: 2 });
    expect(rerun).toMatchObject({ profiled: 0, skipped: 20, tokens: 0 });
    const rows = listEntries(bank);
    expect(rows.every((row) => row.profile === "fresh" && row.hasAdapter === false)).toBe(true);
    expect(rows[0]!.records).toBe(dataset.splits.train.length);
  });

  it("verify finds a modified dataset; index reports it instead of profiling it", async () => {
    expect((await verifyBank(bank)).problems).toEqual([]);
    const victim = bank.entries()[3]!;
    const json = JSON.parse(readFileSync(victim.dataPath, "utf8")) as { Instances: { input: string }[] };
    json.Instances[0]!.input += " (edited)";
    writeFileSync(victim.dataPath, JSON.stringify(json));
    const report = await verifyBank(bank);
    expect(report.entries).toBe(20);
    expect(report.problems).toEqual([
      {
        id: victim.id,
        kind: "data-hash",
        message: `${victim.dataPath}: dataset of "${victim.id}" changed since it was added`,
      },
    ]);
    // The profile stays (its hash still matches the entry); a re-add marks it stale until indexed.
    expect(bank.profile(victim.id)).toBeDefined();
    await addEntry(bank, { id: victim.id, data: victim.dataPath, replace: true });
    expect(bank.profile(victim.id)).toBeUndefined();
    expect(listEntries(bank).find((row) => row.id === victim.id)!.profile).toBe("stale");
    expect((await verifyBank(bank)).problems.map((p) => p.kind)).toEqual(["stale-profile"]);
    const r = await indexBank(bank, { threads: 1 });
    expect(r.profiled).toBe(1);
    expect((await verifyBank(bank)).problems).toEqual([]);
  });
});

describe("indexing interrupted", () => {
  it("keeps the first profile, leaves a bank that opens, and a rerun completes", async () => {
    const tasksDir = taskCopies("abort", 3);
    const dir = join(tmp.dir, "abort-bank");
    const bank = await initBank(dir, { tokenizer: "mistral" });
    await importSni(bank, { tasks: tasksDir });
    const controller = new AbortController();
    const e = await rejection(
      indexBank(bank, { threads: 1, signal: controller.signal, progress: () => controller.abort() }),
    );
    expect(e.code).toBe("ABORTED");
    bank.close();

    const reopened = await openBank(dir);
    const [first, ...rest] = reopened.entries().map((x) => x.id);
    expect(reopened.profile(first!)).toBeDefined();
    expect(reopened.staleIds()).toEqual(rest);
    const r = await indexBank(reopened, { threads: 1 });
    expect(r).toMatchObject({ profiled: 2, skipped: 1 });
    expect(reopened.staleIds()).toEqual([]);
    reopened.close();
  });
});

describe("adapters", () => {
  const SAME = ["gemma3-270m_ao-wei_adapter", "gemma3-270m_ao-wei_seed123", "gemma3-270m_ao-wei_stage1"];
  const OTHER = "gemma3-270m_0112LY";

  it("accepts adapters sharing a layout, refuses another layout with its differences", async () => {
    const dir = join(tmp.dir, "gemma-bank");
    const bank = await initBank(dir, { tokenizer: "mistral" });
    const data = join(SNI_DIR, TASKS[0]!);
    // One adapter lives inside the bank: stored relative, so the bank can move.
    const inside = join(dir, "adapters", SAME[0]!);
    cpSync(join(PEFT_FIXTURES, SAME[0]!), inside, { recursive: true });
    await addEntry(bank, { id: "a0", data, adapter: inside });
    for (const [i, name] of SAME.slice(1).entries()) {
      await addEntry(bank, { id: `a${i + 1}`, data, adapter: join(PEFT_FIXTURES, name) });
    }
    const layout = bank.layout()!;
    expect(layout.r).toBe(4);
    expect(layout.alpha).toBe(16);
    expect([...layout.targetModules].sort()).toEqual(["k_proj", "o_proj", "q_proj", "v_proj"]);
    expect(bank.entry("a0")!.adapterPath).toBe(inside);
    expect(bank.entry("a1")!.adapterPath).toBe(join(PEFT_FIXTURES, SAME[1]!));

    const e = await rejection(addEntry(bank, { id: "other", data, adapter: join(PEFT_FIXTURES, OTHER) }));
    expect(e.code).toBe("LAYOUT");
    // The bank: alpha 16 on q/k/v/o of 18 layers (144 tensors); 0112LY: alpha 4 on q/v (72), so
    // 2 + 72 differences, the first 5 listed.
    expect(e.message).toBe(
      `${join(PEFT_FIXTURES, OTHER)}: adapter layout differs from the bank's (bank vs this adapter): ` +
        "lora_alpha: 16 vs 4; target_modules: [k_proj, o_proj, q_proj, v_proj] vs [q_proj, v_proj]; " +
        "tensor base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight missing in the second adapter; " +
        "tensor base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight missing in the second adapter; " +
        "tensor base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight missing in the second adapter; " +
        "... and 69 more differences",
    );
    expect(e.message).not.toContain("\n");
    expect(bank.entry("other")).toBeUndefined();

    const dup = await rejection(addEntry(bank, { id: "a1", data }));
    expect(dup.message).toBe(`${dir}: entry "a1" already exists (pass \`replace: true\`)`);
    // Library words in the message; the CLI prints its flag instead.
    expect(cliMessage(dup)).toBe(`${dir}: entry "a1" already exists (pass --replace)`);
    expect((await rejection(addEntry(bank, { id: "bad id/", data }))).code).toBe("USAGE");
    bank.close();

    const db = new Database(join(dir, "bank.sqlite"), { readonly: true });
    const rows = db.prepare("SELECT id, adapter_path FROM entries ORDER BY id").all() as {
      id: string;
      adapter_path: string;
    }[];
    db.close();
    expect(rows[0]).toEqual({ id: "a0", adapter_path: join("adapters", SAME[0]!) });
    expect(rows[1]!.adapter_path).toBe(join(PEFT_FIXTURES, SAME[1]!));

    // Verify re-checks adapters: an edited adapter file is reported.
    const config = join(inside, "adapter_config.json");
    writeFileSync(
      config,
      readFileSync(config, "utf8").replace('"lora_dropout": 0.05', '"lora_dropout": 0.1'),
    );
    const reopened = await openBank(dir);
    const problems = (await verifyBank(reopened)).problems.filter((p) => p.kind !== "stale-profile");
    expect(problems).toEqual([
      { id: "a0", kind: "adapter-hash", message: `${inside}: adapter of "a0" changed since it was added` },
    ]);
    reopened.close();
  });
});

describe("base model", () => {
  const TESTBED_ADAPTER = join(REPO, "testbed/adapters/task022_cosmosqa_passage_inappropriate_binary");
  const GEMMA = join(PEFT_FIXTURES, "gemma3-270m_ao-wei_adapter");

  it("records a local base model relative to the bank and refuses adapters of another shape", async () => {
    const dir = join(tmp.dir, "tiny-base");
    const bank = await initBank(dir, { tokenizer: TINY_MODEL, baseModel: TINY_MODEL });
    expect(bank.baseModel).toBe(TINY_MODEL);
    const data = join(SNI_DIR, TASKS[0]!);
    await addEntry(bank, { id: "fits", data, adapter: TESTBED_ADAPTER });
    // gemma-3-270m: hidden size 640 on 18 layers; the tiny Llama has 128 on 2.
    const e = await rejection(addEntry(bank, { id: "gemma", data, adapter: GEMMA }));
    expect(e.code).toBe("LAYOUT");
    expect(e.message).toBe(
      `${GEMMA}: adapter does not fit the bank's base model ${TINY_MODEL}: ` +
        "base_model.model.model.layers.0.self_attn.k_proj: 640→256, the base model's k_proj is 128→64; " +
        "base_model.model.model.layers.0.self_attn.o_proj: 1024→640, the base model's o_proj is 128→128; " +
        "base_model.model.model.layers.0.self_attn.q_proj: 640→1024, the base model's q_proj is 128→128",
    );
    expect(bank.entry("gemma")).toBeUndefined();
    bank.close();
    const db = new Database(join(dir, "bank.sqlite"), { readonly: true });
    const stored = db.prepare("SELECT value FROM meta WHERE key = 'base_model_path'").get() as {
      value: string;
    };
    db.close();
    expect(stored.value).toBe(relative(dir, TINY_MODEL));
  });

  it("knows the Lots-of-LoRAs base by its hub id, and refuses a tokenizer larger than its embedding", async () => {
    const bank = await initBank(join(tmp.dir, "mistral-base"), {
      tokenizer: "mistral",
      baseModel: "mistralai/Mistral-7B-Instruct-v0.2",
    });
    expect(bank.baseModel).toBe("mistralai/Mistral-7B-Instruct-v0.2");
    const e = await rejection(
      addEntry(bank, { id: "tiny", data: join(SNI_DIR, TASKS[0]!), adapter: TESTBED_ADAPTER }),
    );
    expect(e.message).toContain("the base model's k_proj is 4096→1024");
    bank.close();

    const big = await rejection(
      initBank(join(tmp.dir, "too-big"), { tokenizer: "mistral", baseModel: TINY_MODEL }),
    );
    expect(big.message).toBe(
      `mistral: tokenizer has 32000 tokens, more than the 2048 of base model ${TINY_MODEL}`,
    );
    expect(existsSync(join(tmp.dir, "too-big", "bank.sqlite"))).toBe(false);
    const odd = await rejection(
      initBank(join(tmp.dir, "odd"), { tokenizer: "mistral", baseModel: "not a model id" }),
    );
    expect(odd.message).toBe("not a model id: no such model directory, and not a hub id (owner/name)");
  });
});

describe("a bank moved or copied", () => {
  const ADAPTER = join(REPO, "testbed/adapters/task022_cosmosqa_passage_inappropriate_binary");

  it("finds its model beside it when moved together, where it stayed when copied alone, and says when neither", async () => {
    const first = join(tmp.dir, "moved-1");
    const model = join(first, "models", "tiny");
    mkdirSync(model, { recursive: true });
    copyFileSync(join(TINY_MODEL, "config.json"), join(model, "config.json"));
    (await initBank(join(first, "bank"), { tokenizer: TINY_MODEL, baseModel: model })).close();
    const data = join(SNI_DIR, TASKS[0]!);

    // Copied alone: the model stayed where it was.
    const copy = join(tmp.dir, "copied", "bank");
    cpSync(join(first, "bank"), copy, { recursive: true });
    let bank = await openBank(copy);
    expect(bank.baseModel).toBe(model);
    expect(bank.baseModelMissing()).toBeNull();
    await addEntry(bank, { id: "fits", data, adapter: ADAPTER });
    bank.close();

    // Moved together with its model: found beside it.
    const second = join(tmp.dir, "moved-2");
    renameSync(first, second);
    bank = await openBank(join(second, "bank"));
    expect(bank.baseModel).toBe(join(second, "models", "tiny"));
    bank.close();

    // The copy now has its model neither beside it nor where it was.
    bank = await openBank(copy);
    const beside = join(tmp.dir, "copied", "models", "tiny");
    expect(bank.baseModelMissing()).toBe(
      `${copy}: the bank's base model is not at ${beside} (recorded as ../models/tiny, relative to the bank; not at ${model} either, where it was): the bank was moved or copied without its model, so adapters made from it name a folder that does not exist; put the bank back beside the model, or the model (or a link to it) at ${beside}`,
    );
    const e = await rejection(addEntry(bank, { id: "other", data, adapter: ADAPTER }));
    expect(e.code).toBe("BANK");
    expect(e.message).toContain("the bank was moved or copied without its model");
    await addEntry(bank, { id: "dataset-only", data });
    bank.close();
  });

  it("the testbed copied elsewhere: bank add and generate say the bank was moved", async () => {
    const copy = join(tmp.dir, "elsewhere", "testbed");
    cpSync(join(REPO, "testbed"), copy, { recursive: true, verbatimSymlinks: true });
    const tsx = (...args: string[]) =>
      run(process.execPath, ["--import", "tsx", join(REPO, "src/cli/main.ts"), ...args], { cwd: REPO }).then(
        (r) => ({ code: 0, stderr: r.stderr }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
    const data = join(SNI_DIR, "task1146_country_capital.json");
    const add = await tsx("bank", "add", copy, "--id", "extra", "--data", data, "--adapter", ADAPTER);
    expect(add.code, add.stderr).toBe(1);
    expect(add.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(
        new RegExp(
          `^loramix: ${copy}: the bank's base model is not at .*: the bank was moved or copied without its model`,
        ),
      ),
    ]);
    const out = join(tmp.dir, "elsewhere", "adapter");
    const generate = await tsx("generate", copy, "--data", data, "--select", "method", "--out", out);
    expect(generate.code, generate.stderr).toBe(0);
    expect(generate.stderr).toContain(
      "the bank was moved or copied without its model, so adapters made from it name a folder that does not exist",
    );
  });
});

describe("hostile folders", () => {
  it("refuses a symlink loop inside an adapter folder instead of hashing forever", async () => {
    const dir = join(tmp.dir, "loop-bank");
    const bank = await initBank(dir, { tokenizer: "mistral" });
    const adapter = join(tmp.dir, "looped-adapter");
    cpSync(join(PEFT_FIXTURES, "gemma3-270m_ao-wei_adapter"), adapter, { recursive: true });
    symlinkSync(".", join(adapter, "again"));
    symlinkSync("..", join(adapter, "up"));
    const e = await rejection(addEntry(bank, { id: "loop", data: join(SNI_DIR, TASKS[0]!), adapter }));
    expect(e.code).toBe("INPUT");
    expect(e.message).toMatch(/: symbolic link loop \(leads back to .*\); remove the link$/);
    expect(bank.entry("loop")).toBeUndefined();
    bank.close();
  });
});

describe("non-finite weights", () => {
  it("bank add refuses an adapter holding NaN or Infinity, naming the tensor and element", async () => {
    const bank = await initBank(join(tmp.dir, "nan-bank"), { tokenizer: TINY_MODEL });
    const data = join(SNI_DIR, TASKS[0]!);
    for (const [value, shown] of [
      [Number.NaN, "NaN"],
      [Number.NEGATIVE_INFINITY, "-Infinity"],
    ] as const) {
      const adapter = join(tmp.dir, `bad-${shown}`);
      cpSync(join(REPO, "testbed/adapters/task022_cosmosqa_passage_inappropriate_binary"), adapter, {
        recursive: true,
      });
      const file = join(adapter, "adapter_model.safetensors");
      const bytes = readFileSync(file);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.toString("utf8", 8, 8 + headerLength)) as Record<
        string,
        { data_offsets: number[] }
      >;
      // The third float of the first tensor in the file, whoever it is.
      const [name, info] = Object.entries(header)
        .filter(([k]) => k !== "__metadata__")
        .sort((a, b) => (a[1].data_offsets[0] as number) - (b[1].data_offsets[0] as number))[0]!;
      bytes.writeFloatLE(value, 8 + headerLength + (info.data_offsets[0] as number) + 8);
      writeFileSync(file, bytes);
      const e = await rejection(addEntry(bank, { id: `bad-${shown}`, data, adapter }));
      expect(e.message).toBe(
        `${file}: tensor ${name}: ${shown} at element 2; non-finite weights would spread into every adapter mixed from the bank`,
      );
    }
    expect(bank.entries()).toEqual([]);
    bank.close();
  });
});

describe("CLI", () => {
  const cli = (...args: string[]) =>
    run(process.execPath, ["--import", "tsx", join(REPO, "src/cli/main.ts"), "bank", ...args], {
      cwd: REPO,
    }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        stdout: e.stdout,
        stderr: e.stderr,
      }),
    );

  it("lists a bank as a table and as JSON, and fails with one line on a non-bank", async () => {
    const tasksDir = taskCopies("cli", 2);
    const dir = join(tmp.dir, "cli-bank");
    const bank = await initBank(dir, { tokenizer: "mistral" });
    await importSni(bank, { tasks: tasksDir });
    await indexBank(bank, { threads: 1 });
    const expected = listEntries(bank);
    bank.close();

    const [table, json, missing] = await Promise.all([
      cli("ls", dir),
      cli("ls", dir, "--json"),
      cli("ls", tasksDir),
    ]);
    expect(table.code).toBe(0);
    // The table is the result (stdout); the summary line is a message (stderr).
    const lines = table.stdout.trimEnd().split("\n");
    expect(table.stderr).toMatch(/^2 entries, 0 with adapters; tokenizer /);
    expect(lines[0]).toMatch(/^id\s+adapter\s+records\s+tokens\s+profile\s+categories$/);
    expect(lines[1]!.split(/\s{2,}/).slice(0, 5)).toEqual([
      expected[0]!.id,
      "no",
      String(expected[0]!.records),
      String(expected[0]!.tokens),
      "fresh",
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(expected);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `loramix: ${tasksDir}: not a loramix bank (no bank.sqlite; create one with \`loramix bank init\`)\n`,
    );
  });
});
