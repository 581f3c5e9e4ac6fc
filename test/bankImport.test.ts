import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importLol } from "../src/bank/importLol.js";
import { importSni } from "../src/bank/importSni.js";
import { indexBank } from "../src/bank/indexBank.js";
import { initBank } from "../src/bank/store.js";
import { verifyBank } from "../src/bank/verify.js";
import { type DatasetRecord, loadDataset } from "../src/datasets/load.js";
import { PEFT_FIXTURES, SNI_DIR, tempDir } from "./helpers/shared.js";

const ADAPTER = join(PEFT_FIXTURES, "gemma3-270m_ao-wei_adapter");
const SAME_LAYOUT = join(PEFT_FIXTURES, "gemma3-270m_ao-wei_seed123");
const OTHER_LAYOUT = join(PEFT_FIXTURES, "gemma3-270m_0112LY");
const T022 = "task022_cosmosqa_passage_inappropriate_binary";
const T033 = "task033_winogrande_answer_generation";
const T050 = "task050_multirc_answerability";

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir("loramix-bank-import-");
});
afterAll(async () => {
  await tmp.cleanup();
});

/** Real records of a Super-NI task, a few per split, as a Lots-of-LoRAs dataset repo holds them. */
async function someRecords(task: string): Promise<Record<"train" | "valid" | "test", DatasetRecord[]>> {
  const all = (await loadDataset(join(SNI_DIR, `${task}.json`))).records;
  return { train: all.slice(0, 12), valid: all.slice(12, 15), test: all.slice(15, 18) };
}

function jsonl(records: DatasetRecord[]): string {
  return records
    .map((r, i) => JSON.stringify({ input: r.input, output: r.output[0], id: r.id ?? String(i) }))
    .join("\n");
}

function parquet(records: DatasetRecord[]): Uint8Array {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "input", data: records.map((r) => r.input), type: "STRING" },
      { name: "output", data: records.map((r) => r.output[0] ?? ""), type: "STRING" },
      { name: "id", data: records.map((r, i) => r.id ?? String(i)), type: "STRING" },
    ],
  });
  return new Uint8Array(buffer);
}

/** A Hugging Face cache repo: files are blobs named by hash, snapshots hold relative symlinks to them. */
function cacheRepo(
  repoDir: string,
  rev: string,
  files: Record<string, Uint8Array | string>,
  main = true,
): void {
  const snapshot = join(repoDir, "snapshots", rev);
  for (const [name, content] of Object.entries(files)) {
    const bytes = typeof content === "string" ? Buffer.from(content) : content;
    const blob = join(repoDir, "blobs", createHash("sha256").update(bytes).digest("hex"));
    mkdirSync(join(blob, ".."), { recursive: true });
    writeFileSync(blob, bytes);
    const link = join(snapshot, name);
    mkdirSync(join(link, ".."), { recursive: true });
    symlinkSync(relative(join(link, ".."), blob), link);
  }
  if (main) {
    mkdirSync(join(repoDir, "refs"), { recursive: true });
    writeFileSync(join(repoDir, "refs", "main"), rev);
  }
}

function adapterFiles(dir: string): Record<string, Uint8Array> {
  return {
    "adapter_config.json": readFileSync(join(dir, "adapter_config.json")),
    "adapter_model.safetensors": readFileSync(join(dir, "adapter_model.safetensors")),
  };
}

describe("import-lol", () => {
  it("imports plain repo folders and the HF cache layout, matched by task number", async () => {
    const root = join(tmp.dir, "lol");
    const owner = join(root, "Lots-of-LoRAs");
    // Plain snapshots: adapter + jsonl dataset under an owner folder, a dataset-only repo without one.
    cpSync(ADAPTER, join(owner, "Mistral-7B-Instruct-v0.2-4b-r16-task022"), { recursive: true });
    const r022 = await someRecords(T022);
    for (const split of ["train", "valid", "test"] as const) {
      mkdirSync(join(owner, T022, "data"), { recursive: true });
      writeFileSync(join(owner, T022, "data", `${split}.jsonl`), jsonl(r022[split]));
    }
    const r050 = await someRecords(T050);
    mkdirSync(join(root, T050, "data"), { recursive: true });
    for (const split of ["train", "valid", "test"] as const) {
      writeFileSync(join(root, T050, "data", `${split}-00000-of-00001.parquet`), parquet(r050[split]));
    }
    // An adapter whose dataset is absent is reported, not imported.
    cpSync(ADAPTER, join(owner, "Mistral-7B-Instruct-v0.2-4b-r16-task044"), { recursive: true });

    // HF cache: refs/main names the snapshot to use; an older one holds an adapter of another layout.
    const hub = join(root, "hub");
    const models033 = join(hub, "models--Lots-of-LoRAs--Mistral-7B-Instruct-v0.2-4b-r16-task033");
    cacheRepo(models033, "1111111111111111111111111111111111111111", adapterFiles(OTHER_LAYOUT), false);
    cacheRepo(models033, "2222222222222222222222222222222222222222", adapterFiles(SAME_LAYOUT));
    const r033 = await someRecords(T033);
    const datasets033 = join(hub, `datasets--Lots-of-LoRAs--${T033}`);
    const rev = "3333333333333333333333333333333333333333";
    cacheRepo(datasets033, rev, {
      "README.md": "# task033\n",
      "data/train-00000-of-00001.parquet": parquet(r033.train),
      "data/valid-00000-of-00001.parquet": parquet(r033.valid),
      "data/test-00000-of-00001.parquet": parquet(r033.test),
    });

    const bank = await initBank(join(tmp.dir, "lol-bank"), { tokenizer: "mistral" });
    const r = await importLol(bank, { root });
    expect(r.added).toEqual([T022, T033, T050]);
    expect(r.withoutAdapter).toEqual([T050]);
    expect(r.adaptersWithoutData).toEqual([join(owner, "Mistral-7B-Instruct-v0.2-4b-r16-task044")]);
    expect(r.duplicates).toEqual([]);

    const e022 = bank.entry(T022)!;
    expect(e022.adapterPath).toBe(join(owner, "Mistral-7B-Instruct-v0.2-4b-r16-task022"));
    expect(e022.dataPath).toBe(join(owner, T022));
    expect(e022.metadata).toMatchObject({ origin: "lots-of-loras", task: T022 });
    const e033 = bank.entry(T033)!;
    expect(e033.adapterPath).toBe(join(models033, "snapshots", "2222222222222222222222222222222222222222"));
    expect(e033.dataPath).toBe(join(datasets033, "snapshots", rev));
    expect(bank.entry(T050)!.adapterPath).toBeNull();

    const index = await indexBank(bank, { threads: 1 });
    expect(index.profiled).toBe(3);
    // The repos' own train splits are profiled, not a hash split of all records.
    expect(bank.profile(T022)!.nRecords).toBe(12);
    expect(bank.profile(T033)!.nRecords).toBe(12);
    expect(bank.profile(T050)!.nRecords).toBe(12);
    expect((await verifyBank(bank)).problems).toEqual([]);

    // Editing a cached blob (what the snapshot's symlink points at) is caught.
    const edited = r033.train.map((x, i) => (i === 0 ? { ...x, input: `${x.input} (edited)` } : x));
    writeFileSync(join(datasets033, "snapshots", rev, "data/train-00000-of-00001.parquet"), parquet(edited));
    expect((await verifyBank(bank)).problems.map((p) => [p.id, p.kind])).toEqual([[T033, "data-hash"]]);
    bank.close();
  });

  it("a hostile tree: link loops and links outside the root are bounded, an over-long id is refused", async () => {
    const root = join(tmp.dir, "hostile-root");
    const r022 = await someRecords(T022);
    mkdirSync(join(root, T022, "data"), { recursive: true });
    for (const split of ["train", "valid", "test"] as const)
      writeFileSync(join(root, T022, "data", `${split}.jsonl`), jsonl(r022[split]));
    // A loop at the top and inside a repo; a link to a folder outside the root holding an adapter.
    symlinkSync(".", join(root, "loop"));
    symlinkSync("..", join(root, T022, "up"));
    const outside = join(tmp.dir, "outside");
    cpSync(ADAPTER, join(outside, "Mistral-7B-Instruct-v0.2-4b-r16-task022"), { recursive: true });
    symlinkSync(outside, join(root, "elsewhere"));
    const bank = await initBank(join(tmp.dir, "hostile-bank"), { tokenizer: "mistral" });
    // The loop inside the dataset repo is refused when the dataset is hashed, naming the link.
    await expect(importLol(bank, { root })).rejects.toThrow(/symbolic link loop/);
    rmSync(join(root, T022, "up"));
    const r = await importLol(bank, { root });
    // The adapter behind the outside link is found (a user may link their own folders) and paired.
    expect(r.added).toEqual([T022]);
    expect(bank.entry(T022)?.adapterPath).toBe(
      join(root, "elsewhere", "Mistral-7B-Instruct-v0.2-4b-r16-task022"),
    );

    // 208 characters: a legal folder name (255 at most), too long for an id.
    const long = `task777_${"x".repeat(200)}`;
    mkdirSync(join(root, long, "data"), { recursive: true });
    writeFileSync(join(root, long, "data", "train.jsonl"), jsonl(r022.train));
    const e = await importLol(bank, { root }).catch((error: unknown) => error as Error);
    expect((e as Error).message).toBe(
      `entry id "task777_${"x".repeat(52)}…" must be 1 to 128 letters, digits, "_", "." or "-" (it has 208 characters)`,
    );
    bank.close();
  });

  it("refuses a root without dataset repos", async () => {
    const root = join(tmp.dir, "empty-root");
    cpSync(ADAPTER, join(root, "Mistral-7B-Instruct-v0.2-4b-r16-task022"), { recursive: true });
    const bank = await initBank(join(tmp.dir, "empty-bank"), { tokenizer: "mistral" });
    await expect(importLol(bank, { root })).rejects.toThrow(`${root}: no Lots-of-LoRAs dataset repos`);
    bank.close();
  });
});

describe("import-sni with adapters", () => {
  it("finds adapters by task name or by taskNNN, others become dataset-only", async () => {
    const tasks = join(tmp.dir, "sni-tasks");
    mkdirSync(tasks);
    for (const t of [T022, T033, T050]) cpSync(join(SNI_DIR, `${t}.json`), join(tasks, `${t}.json`));
    const adapters = join(tmp.dir, "sni-adapters");
    cpSync(ADAPTER, join(adapters, T022), { recursive: true });
    cpSync(SAME_LAYOUT, join(adapters, "task033"), { recursive: true });
    const bank = await initBank(join(tmp.dir, "sni-adapter-bank"), { tokenizer: "mistral" });
    const r = await importSni(bank, { tasks, adapters });
    expect(r.added).toEqual([T022, T033, T050]);
    expect(r.withoutAdapter).toEqual([T050]);
    expect(bank.entry(T022)!.adapterPath).toBe(join(adapters, T022));
    expect(bank.entry(T033)!.adapterPath).toBe(join(adapters, "task033"));
    const raw = JSON.parse(readFileSync(join(SNI_DIR, `${T033}.json`), "utf8")) as { Categories: string[] };
    expect(bank.entry(T033)!.metadata.categories).toEqual(raw.Categories);
    bank.close();
  });
});
