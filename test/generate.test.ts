import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../src/bank/add.js";
import { indexBank } from "../src/bank/indexBank.js";
import { type Bank, initBank } from "../src/bank/store.js";
import { loadDataset } from "../src/datasets/load.js";
import { bankDistanceMatrix } from "../src/distances/matrix.js";
import { LoramixError } from "../src/errors.js";
import { generateAdapter } from "../src/generate/generateAdapter.js";
import { type Profile, profileRecords } from "../src/profiles/profile.js";
import { synthBank } from "../src/synth/synthBank.js";
import { trainBankMlp } from "../src/weights/bankMlp.js";
import { mlpForward } from "../src/weights/mlp.js";
import { readSafetensorsF32 } from "./helpers/safetensors.js";
import { SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/** Small real Super-NI tasks (the bank) and one more (the new dataset). */
const BANK_TASKS = [
  "task1319_country_by_barcode_prefix",
  "task628_xlwic_word_with_different_meaning_sentence_generation",
  "task1582_bless_hypernym_generation",
  "task1403_check_validity_date_mmddyyyy",
];
const TARGET = join(SNI_DIR, "task1148_maximum_ascii_value.json");

let tmp: { dir: string; cleanup: () => Promise<void> };
let bank: Bank;
let synthEntries: { id: string; dataPath: string; adapterDir: string }[];
beforeAll(async () => {
  tmp = await tempDir("loramix-generate-");
  const tasks = join(tmp.dir, "tasks");
  mkdirSync(tasks);
  for (const t of BANK_TASKS) symlinkSync(join(SNI_DIR, `${t}.json`), join(tasks, `${t}.json`));
  const synth = await synthBank({
    dir: join(tmp.dir, "synth"),
    data: tasks,
    entries: BANK_TASKS.length,
    layout: "tiny",
  });
  bank = await initBank(join(tmp.dir, "bank"), { tokenizer: TINY_MODEL });
  synthEntries = synth.entries;
  for (const e of synth.entries) await addEntry(bank, { id: e.id, data: e.dataPath, adapter: e.adapterDir });
  await indexBank(bank, { threads: 1 });
}, 60_000);
afterAll(async () => {
  bank?.close();
  await tmp.cleanup();
});

/** SPEC §3 numpy-histogram densities, written out densely: last two ids share a bin, + ε. */
function densities(p: Profile): Float64Array {
  const v = p.vocabSize;
  const d = new Float64Array(v - 1);
  for (let k = 0; k < p.ids.length; k++) {
    const id = p.ids[k] as number;
    const bin = Math.min(id, v - 2);
    d[bin] = (d[bin] as number) + (p.counts[k] as number) / p.nTokens;
  }
  for (let k = 0; k < d.length; k++) d[k] = (d[k] as number) + 1e-10;
  return d;
}

function bruteJs(p: Profile, q: Profile): number {
  const a = densities(p);
  const b = densities(q);
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    const m = ((a[k] as number) + (b[k] as number)) / 2;
    s +=
      0.5 * (a[k] as number) * Math.log((a[k] as number) / m) +
      0.5 * (b[k] as number) * Math.log((b[k] as number) / m);
  }
  return s;
}

function bruteWd(p: Profile, q: Profile): number {
  const fp = new Float64Array(p.vocabSize);
  const fq = new Float64Array(q.vocabSize);
  for (const [k, id] of p.ids.entries()) fp[id] = (p.counts[k] as number) / p.nTokens;
  for (const [k, id] of q.ids.entries()) fq[id] = (q.counts[k] as number) / q.nTokens;
  let cp = 0;
  let cq = 0;
  let s = 0;
  for (let k = 0; k <= p.vocabSize - 2; k++) {
    cp += fp[k] as number;
    cq += fq[k] as number;
    s += Math.abs(cp - cq);
  }
  return s;
}

function bruteSoftmin(x: number[]): number[] {
  const e = x.map((v) => Math.exp(-v));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

interface Written {
  weights: { id: string; weight: number; distance: number; rawWeight?: number }[];
  [key: string]: unknown;
}

async function targetProfile(): Promise<Profile> {
  const dataset = await loadDataset(TARGET);
  return profileRecords(dataset.splits.train, { tokenizer: bank.tokenizer });
}

describe("generateAdapter", () => {
  it("writes Σ w_j θ_j with normalized JS weights equal to a brute-force recomputation", async () => {
    const out = join(tmp.dir, "gen-js");
    const result = await generateAdapter(bank, { data: TARGET, method: "normalized", out });
    const written = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8")) as Written;
    expect(written.weights).toHaveLength(BANK_TASKS.length);
    expect(written.metric).toBe("js");
    expect(written.method).toBe("normalized");
    expect(written.merge).toBe("linear");
    expect(written.tokenizer).toBe(bank.tokenizerName);
    expect(written.synthetic).toBe(true);
    expect(written.syntheticNote).toMatch(/synth-bank/);
    expect((written.versions as { node: string }).node).toBe(process.version);
    const data = (written.inputs as { data: { hash: string; kind: string } }).data;
    expect(data.kind).toBe("dataset");
    expect(data.hash).toBe(createHash("sha256").update(readFileSync(TARGET)).digest("hex"));

    const target = await targetProfile();
    const ids = bank.entries().map((e) => e.id);
    const d = ids.map((id) => bruteJs(target, bank.profile(id) as Profile));
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
    const w = bruteSoftmin(d.map((x) => (x - mean) / std));
    for (const [j, id] of ids.entries()) {
      const row = written.weights.find((r) => r.id === id);
      expect(row?.distance).toBeCloseTo(d[j] as number, 10);
      expect(Math.abs((row?.weight as number) - (w[j] as number))).toBeLessThan(1e-9);
    }
    // The target is closer to some tasks than others: the weights are far from uniform.
    expect(Math.max(...w) - Math.min(...w)).toBeGreaterThan(0.05);
    expect(result.weights.map((r) => r.id)).toEqual(written.weights.map((r) => r.id));
    // Sorted by weight, every candidate listed.
    for (let k = 1; k < written.weights.length; k++)
      expect(written.weights[k - 1]!.weight).toBeGreaterThanOrEqual(written.weights[k]!.weight);

    const mixed = readAll(join(out, "adapter_model.safetensors"));
    const inputs = ids.map((id) =>
      readAll(join(bank.entry(id)!.adapterPath as string, "adapter_model.safetensors")),
    );
    expect([...mixed.keys()].sort()).toEqual([...(inputs[0] as Map<string, Float32Array>).keys()].sort());
    let worst = 0;
    for (const [name, values] of mixed) {
      for (let k = 0; k < values.length; k++) {
        let expected = 0;
        for (const [j, input] of inputs.entries())
          expected += (w[j] as number) * (input.get(name)![k] as number);
        worst = Math.max(worst, Math.abs((values[k] as number) - expected) / (Math.abs(expected) + 1e-6));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
    expect(config.r).toBe(4);
    // A bank without a recorded base model keeps what its adapters say.
    expect(config.base_model_name_or_path).toBe("loramix/tiny-synthetic");
  });

  it("names the bank's base model in the adapter it writes, so PEFT finds the base", async () => {
    const named = await initBank(join(tmp.dir, "named"), {
      tokenizer: TINY_MODEL,
      baseModel: "example/tiny-base",
    });
    try {
      for (const e of synthEntries)
        await addEntry(named, { id: e.id, data: e.dataPath, adapter: e.adapterDir });
      await indexBank(named, { threads: 1 });
      const out = join(tmp.dir, "gen-named");
      await generateAdapter(named, { data: TARGET, method: "normalized", out });
      const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
      expect(config.base_model_name_or_path).toBe("example/tiny-base");
      expect(config.r).toBe(4);
    } finally {
      named.close();
    }
  });

  it("refuses a bank adapter whose bytes changed after it was added, as bank verify reports", async () => {
    const changed = await initBank(join(tmp.dir, "changed"), { tokenizer: TINY_MODEL });
    try {
      const copies = synthEntries.map((e) => {
        const dir = join(tmp.dir, "changed-adapters", e.id);
        cpSync(e.adapterDir, dir, { recursive: true });
        return { ...e, adapterDir: dir };
      });
      for (const e of copies) await addEntry(changed, { id: e.id, data: e.dataPath, adapter: e.adapterDir });
      await indexBank(changed, { threads: 1 });
      await generateAdapter(changed, {
        data: TARGET,
        method: "normalized",
        out: join(tmp.dir, "gen-before"),
      });
      // Same size, one byte different: only the hash tells (the fingerprint sees the new mtime).
      const victim = copies[1]!;
      const file = join(victim.adapterDir, "adapter_model.safetensors");
      const bytes = readFileSync(file);
      bytes.writeUInt8((bytes.at(-1) as number) ^ 1, bytes.length - 1);
      writeFileSync(file, bytes);
      const error = await generateAdapter(changed, {
        data: TARGET,
        method: "normalized",
        out: join(tmp.dir, "gen-after"),
      }).catch((e: unknown) => e as LoramixError);
      expect((error as LoramixError).code).toBe("BANK");
      expect((error as LoramixError).message).toBe(
        `${victim.adapterDir}: adapter of "${victim.id}" changed since it was added to ${changed.dir}; restore it, or add it again (bank add with \`replace: true\`)`,
      );
      expect(existsSync(join(tmp.dir, "gen-after"))).toBe(false);
      // Restored bytes (a new mtime, the old hash): accepted again.
      bytes.writeUInt8((bytes.at(-1) as number) ^ 1, bytes.length - 1);
      writeFileSync(file, bytes);
      await generateAdapter(changed, {
        data: TARGET,
        method: "normalized",
        out: join(tmp.dir, "gen-after"),
      });
    } finally {
      changed.close();
    }
  });

  it("attentional WD weights with top-k from a profile.json of the bank's tokenizer", async () => {
    const target = await targetProfile();
    const profileFile = join(tmp.dir, "target.profile.json");
    const counts: Record<string, number> = {};
    for (const [k, id] of target.ids.entries()) counts[String(id)] = target.counts[k] as number;
    writeFileSync(
      profileFile,
      JSON.stringify({
        tokenizer: target.tokenizer,
        vocabSize: target.vocabSize,
        nRecords: target.nRecords,
        nTokens: target.nTokens,
        counts,
      }),
    );
    const out = join(tmp.dir, "gen-wd");
    await generateAdapter(bank, {
      data: profileFile,
      metric: "wd",
      method: "attentional",
      topK: 2,
      temperature: 0.5,
      out,
    });
    const written = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8")) as Written;
    expect((written.inputs as { data: { kind: string } }).data.kind).toBe("profile");
    const ids = bank.entries().map((e) => e.id);
    const d = ids.map((id) => bruteWd(target, bank.profile(id) as Profile));
    const raw = bruteSoftmin(d.map((x) => x / 0.5));
    const keep = [...raw.keys()].sort((a, b) => (raw[b] as number) - (raw[a] as number)).slice(0, 2);
    const kept = keep.reduce((s, j) => s + (raw[j] as number), 0);
    for (const [j, id] of ids.entries()) {
      const row = written.weights.find((r) => r.id === id)!;
      expect(row.distance).toBeCloseTo(d[j] as number, 9);
      expect(row.rawWeight).toBeCloseTo(raw[j] as number, 12);
      expect(row.weight).toBeCloseTo(keep.includes(j) ? (raw[j] as number) / kept : 0, 12);
    }
    expect((written.inputs as { adapters: unknown[] }).adapters).toHaveLength(2);
  });

  it("refuses a profile.json made with another tokenizer, naming both", async () => {
    const file = join(tmp.dir, "mistral.profile.json");
    writeFileSync(
      file,
      JSON.stringify({ tokenizer: "mistral", vocabSize: 32000, nRecords: 1, nTokens: 3, counts: { "1": 3 } }),
    );
    const error = await generateAdapter(bank, { data: file, out: join(tmp.dir, "never") }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as LoramixError).code).toBe("TOKENIZER");
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain("mistral");
    expect((error as Error).message).toContain(bank.tokenizerName);
    expect(existsSync(join(tmp.dir, "never"))).toBe(false);
  });

  it("refuses an empty dataset and one without train records", async () => {
    const empty = join(tmp.dir, "empty.jsonl");
    writeFileSync(empty, "");
    await expect(generateAdapter(bank, { data: empty, out: join(tmp.dir, "never") })).rejects.toThrow(
      `${empty}: the dataset has no records`,
    );
    // Ids whose SPEC §1 split (SHA-1 mod 10) is test, found by brute force.
    const testIds: string[] = [];
    for (let k = 0; testIds.length < 2; k++) {
      const digest = createHash("sha1").update(`r${k}`).digest();
      if (BigInt(`0x${digest.toString("hex")}`) % 10n === 9n) testIds.push(`r${k}`);
    }
    const noTrain = join(tmp.dir, "no-train.jsonl");
    writeFileSync(
      noTrain,
      testIds.map((id) => JSON.stringify({ id, input: "hello", output: "world" })).join("\n"),
    );
    await expect(generateAdapter(bank, { data: noTrain, out: join(tmp.dir, "never") })).rejects.toThrow(
      `${noTrain}: no train records among the dataset's 2`,
    );
  });

  it("neural without a trained MLP says to run train-mlp; a bank without adapters says so", async () => {
    await expect(
      generateAdapter(bank, { data: TARGET, method: "neural", out: join(tmp.dir, "never") }),
    ).rejects.toThrow(/loramix train-mlp .* --metric js/);
    const { mlp } = await trainBankMlp(bank, await bankDistanceMatrix(bank, { metric: "js" }), {
      metric: "js",
      hidden: 8,
      epochs: 2,
    });
    const out = join(tmp.dir, "gen-neural");
    await generateAdapter(bank, { data: TARGET, method: "neural", mlpHidden: 8, out });
    const written = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8")) as Written;
    const d = bank.entries().map((e) => written.weights.find((r) => r.id === e.id)!.distance);
    const mean = d.reduce((x, y) => x + y, 0) / d.length;
    const std = Math.sqrt(d.reduce((x, y) => x + (y - mean) ** 2, 0) / d.length);
    const w = bruteSoftmin(
      Array.from(
        mlpForward(
          mlp,
          d.map((x) => (x - mean) / std),
        ),
      ),
    );
    for (const [j, e] of bank.entries().entries()) {
      expect(written.weights.find((r) => r.id === e.id)!.weight).toBeCloseTo(w[j] as number, 12);
    }
    expect((written.options as { mlp: { hidden: number } }).mlp.hidden).toBe(8);
    const dataOnly = await initBank(join(tmp.dir, "data-only"), { tokenizer: TINY_MODEL });
    try {
      await addEntry(dataOnly, { id: "t", data: TARGET });
      const error = await generateAdapter(dataOnly, {
        data: TARGET,
        out: join(tmp.dir, "never"),
      }).catch((e: unknown) => e);
      expect((error as LoramixError).code).toBe("BANK");
      expect((error as Error).message).toContain("no adapters");
    } finally {
      dataOnly.close();
    }
  });

  it("an interrupted run leaves no output directory", async () => {
    const out = join(tmp.dir, "gen-aborted");
    const controller = new AbortController();
    controller.abort();
    const error = await generateAdapter(bank, { data: TARGET, out, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect((error as LoramixError).code).toBe("ABORTED");
    expect(existsSync(out)).toBe(false);
  });
});

/** Tensor values only, by name. */
function readAll(file: string): Map<string, Float32Array> {
  return new Map([...readSafetensorsF32(file)].map(([name, t]) => [name, t.data]));
}
