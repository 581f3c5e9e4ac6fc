import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { defineCommand } from "citty";
import { describe, expect, it } from "vitest";
import { eta } from "../src/cli/context.js";
import { checkArgs, didYouMean } from "../src/cli/strictArgs.js";
import { checkOutDir, OUTPUT_MARKER, writeDirAtomic } from "../src/util/atomic.js";
import { loramix } from "./helpers/cli.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const run = promisify(execFile);
describe("the built command", () => {
  // npx runs the bin file itself; npm makes it executable only when it links the package, so a
  // rebuilt dist/ (a fresh clone at a path npx has cached) gave "Permission denied".
  it("is executable after npm run build and runs as a program", async () => {
    const bin = join(REPO, "dist/cli/main.js");
    expect(statSync(bin).mode & 0o111, `${bin} is not executable`).not.toBe(0);
    const { stdout } = await run(bin, ["--help"]);
    expect(stdout).toContain("USAGE loramix");
  });
});

describe("unknown options and commands", () => {
  const tree = defineCommand({
    args: { verbose: { type: "boolean" } },
    subCommands: {
      generate: defineCommand({
        args: {
          bank: { type: "positional" },
          metric: { type: "string" },
          "max-new-tokens": { type: "string" },
          fit: { type: "boolean", default: true },
        },
      }),
      bank: () =>
        Promise.resolve(
          defineCommand({ subCommands: { ls: defineCommand({ args: { json: { type: "boolean" } } }) } }),
        ),
    },
  });

  it("accepts what a command defines (with =value, --no-X, after --) and refuses the rest with the nearest name", async () => {
    await checkArgs(tree, [
      "generate",
      "b",
      "--metric",
      "wd",
      "--max-new-tokens=4",
      "--no-fit",
      "--verbose",
      "--",
      "--x",
    ]);
    await checkArgs(tree, ["bank", "ls", "--json"]);
    await expect(checkArgs(tree, ["generate", "--metirc", "wd"])).rejects.toThrow(
      'unknown option "--metirc" for "loramix generate"; did you mean "--metric"?',
    );
    await expect(checkArgs(tree, ["generate", "--max-new-token=4"])).rejects.toThrow(
      /did you mean "--max-new-tokens"/,
    );
    await expect(checkArgs(tree, ["generate", "--loud"])).rejects.toMatchObject({ code: "USAGE" });
    // --quiet is every command's.
    await checkArgs(tree, ["generate", "--quiet"]);
    await expect(checkArgs(tree, ["genrate"])).rejects.toThrow('did you mean "loramix generate"?');
    await expect(checkArgs(tree, ["bank", "lss"])).rejects.toThrow('did you mean "loramix bank ls"?');
    expect(didYouMean("zzzzzz", ["metric", "method"])).toBeUndefined();
  });

  it("the CLI exits 2 with one line and writes nothing; `loramix help CMD` shows the command's help", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const r = await loramix(dir, "generate", "bank", "--data", "x.jsonl", "--out", "out", "--metirc", "wd");
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toEqual([
        'loramix: unknown option "--metirc" for "loramix generate"; did you mean "--metric"? (see loramix generate --help)',
      ]);
      expect(existsSync(join(dir, "out"))).toBe(false);
      const help = await loramix(dir, "help", "generate");
      expect(help.code).toBe(0);
      expect(help.stdout + help.stderr).toMatch(/loramix generate \[OPTIONS\] <BANK>/);
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe("--out never removes what loramix did not write", () => {
  it("writeDirAtomic refuses a file and a folder of the user's, replaces its own output of the same kind", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const fill = (text: string) => async (tmp: string) => writeFileSync(join(tmp, "a.txt"), text);
      const out = join(dir, "out");
      await writeDirAtomic(out, fill("one"), "adapter");
      expect(JSON.parse(readFileSync(join(out, OUTPUT_MARKER), "utf8"))).toEqual({ kind: "adapter" });
      await writeDirAtomic(out, fill("two"), "adapter");
      expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("two");
      await expect(writeDirAtomic(out, fill("x"), "demo")).rejects.toThrow(
        /holds a loramix adapter output, not a demo/,
      );

      const mine = join(dir, "mine");
      mkdirSync(mine);
      writeFileSync(join(mine, "notes.txt"), "keep me");
      await expect(writeDirAtomic(mine, fill("x"), "adapter")).rejects.toThrow(
        `${mine}: the folder holds files loramix did not write (notes.txt)`,
      );
      expect(readdirSync(mine)).toEqual(["notes.txt"]);
      const file = join(dir, "file.json");
      writeFileSync(file, "{}");
      await expect(checkOutDir(file, "loo")).rejects.toThrow(`${file}: exists and is not a folder`);
      expect(readFileSync(file, "utf8")).toBe("{}");
      // An empty folder is fine, and no temp folder is left beside a refused one.
      mkdirSync(join(dir, "empty"));
      await writeDirAtomic(join(dir, "empty"), fill("e"), "loo");
      expect(readdirSync(dir).filter((n) => n.startsWith("."))).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it("generate --out on a user's folder exits non-zero with one line before any work, and keeps the folder", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      writeFileSync(join(dir, "unrelated.txt"), "x");
      const data = join(SNI_DIR, "task069_abductivenli_classification.json");
      const r = await loramix(dir, "generate", join(REPO, "testbed"), "--data", data, "--out", ".");
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain("the folder holds files loramix did not write (unrelated.txt)");
      // The library names its option `out`; the CLI prints its flag.
      expect(r.stderr).toContain("give --out a new or empty folder");
      expect(r.stderr).not.toContain("`out`");
      expect(readdirSync(dir)).toEqual(["unrelated.txt"]);
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe("output streams", () => {
  const TESTBED = join(REPO, "testbed");
  const TARGET = join(SNI_DIR, "task069_abductivenli_classification.json");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for colour codes
  const ANSI = /\u001b\[/;

  it("tables go to stdout, messages to stderr; --json prints one document; --quiet leaves only results", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const ls = await loramix(dir, "bank", "ls", TESTBED);
      expect(ls.code).toBe(0);
      const table = ls.stdout.trim().split("\n");
      expect(table[0]).toMatch(/^id +adapter +records +tokens +profile +categories$/);
      expect(table).toHaveLength(62);
      expect(ls.stderr).toMatch(/^61 entries, 61 with adapters; tokenizer hf:/);

      const gen = await loramix(
        dir,
        "generate",
        TESTBED,
        "--data",
        TARGET,
        "--select",
        "method",
        "--metric",
        "js",
        "--method",
        "normalized",
        "--out",
        "adapter",
        "--json",
        "--quiet",
      );
      expect(gen.code).toBe(0);
      expect(gen.stderr).toBe("");
      const result = JSON.parse(gen.stdout) as {
        out: string;
        weights: { id: string; weight: number }[];
        target: { records: number; datasetRecords: number };
      };
      expect(result.out).toBe(join(dir, "adapter"));
      expect(result.weights).toHaveLength(61);
      expect(result.weights.reduce((a, w) => a + w.weight, 0)).toBeCloseTo(1, 9);
      expect(result.target.records).toBeLessThan(result.target.datasetRecords);

      const plain = await loramix(
        dir,
        "generate",
        TESTBED,
        "--data",
        TARGET,
        "--select",
        "method",
        "--method",
        "normalized",
        "--out",
        "adapter",
      );
      expect(plain.code).toBe(0);
      expect(plain.stdout).toMatch(
        new RegExp(`target: ${result.target.records} train records \\(of ${result.target.datasetRecords}\\)`),
      );
      expect(plain.stderr).toContain(`adapter written to ${join(dir, "adapter")}`);
      expect(plain.stdout).not.toContain("adapter written");

      const d = await loramix(dir, "distances", TESTBED, "--metric", "js", "--out", "d.json", "--json");
      expect(d.code).toBe(0);
      expect(JSON.parse(d.stdout)).toMatchObject({ metrics: ["js"], ids: 61, out: join(dir, "d.json") });
      const both = await loramix(dir, "distances", TESTBED, "--metric", "js", "--out", "-", "--json");
      expect(both.code).toBe(2);

      const verify = await loramix(dir, "bank", "verify", TESTBED, "--json", "--quiet");
      expect(JSON.parse(verify.stdout)).toMatchObject({ entries: 61, problems: [] });
      expect(verify.code).toBe(0);

      const evaluated = await loramix(
        dir,
        "eval",
        "--model",
        TINY_MODEL,
        "--data",
        TARGET,
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        "eval",
        "--json",
      );
      expect(evaluated.code).toBe(0);
      const metrics = JSON.parse(evaluated.stdout) as {
        n: number;
        rougeL: { mean: number };
        files: { predictions: string };
      };
      expect(metrics.n).toBe(2);
      expect(metrics.files.predictions).toBe(join(dir, "eval", "predictions.jsonl"));
      for (const r of [ls, gen, plain, d, verify, evaluated]) expect(r.stdout + r.stderr).not.toMatch(ANSI);
    } finally {
      await cleanup();
    }
  }, 180_000);

  it("help in a pipe: no colour codes, no padding after the text, lines wrapped under their column", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      for (const args of [["--help"], ["help", "train"], ["eval", "--help"]]) {
        const r = await loramix(dir, ...args);
        expect(r.code).toBe(0);
        expect(r.stdout).not.toMatch(ANSI);
        for (const line of r.stdout.split("\n")) {
          expect(line).toBe(line.trimEnd());
          expect(line.length).toBeLessThanOrEqual(120);
        }
      }
      const top = (await loramix(dir, "--help")).stdout;
      expect(top).toContain("--quiet");
      // train's long description continues under the description column.
      const trainLine = top.split("\n").findIndex((l) => /^\s+train {4}/.test(l));
      const next = top.split("\n")[trainLine + 1] as string;
      expect(next.length - next.trimStart().length).toBe(
        (top.split("\n")[trainLine] as string).indexOf("Train a LoRA"),
      );
    } finally {
      await cleanup();
    }
  }, 60_000);

  it("profile refuses a split with no records instead of writing an empty profile", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // One record without an id: its index "0" hashes to the valid split (SPEC §1), so train is empty.
      writeFileSync(join(dir, "one.jsonl"), '{"input": "q", "output": "a"}\n');
      const r = await loramix(dir, "profile", "one.jsonl", "--tokenizer", "mistral", "--out", "p.json");
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n")).toEqual([
        `loramix: ${join(dir, "one.jsonl")}: no train records among the dataset's 1 (SPEC §1 split); choose another --split or give more records`,
      ]);
      expect(existsSync(join(dir, "p.json"))).toBe(false);
    } finally {
      await cleanup();
    }
  }, 60_000);

  it("plain progress lines carry an ETA once work is done", () => {
    expect(eta(10_000, 5, 5)).toBe(", ETA 10s");
    expect(eta(30_000, 1, 3)).toBe(", ETA 1m 30s");
    expect(eta(1_000, 0, 5)).toBe("");
    expect(eta(1_000, 5, 0)).toBe("");
  });
});
