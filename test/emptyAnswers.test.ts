/**
 * Empty answers: a train split whose outputs are all "" is refused before any scoring or training,
 * naming the file; one where only some are empty is fitted, with a warning naming it.
 */
import { execFile } from "node:child_process";
import { existsSync, symlinkSync, writeFileSync } from "node:fs";
import { cp } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAnswers, tallyAnswers } from "../src/datasets/emptyAnswers.js";
import { REPO, SHARED, TINY_MODEL, tempDir } from "./helpers/shared.js";

const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;

function loramix(cwd: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args],
      { cwd },
      (error, _o, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

/** 80 yes/no records; the first `empty` of them answer "". */
function dataset(file: string, empty: number): string {
  const lines = Array.from({ length: 80 }, (_, i) =>
    JSON.stringify({ input: `Is ${i} even?`, output: i < empty ? "" : i % 2 === 0 ? "yes" : "no" }),
  );
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let testbed: string;
beforeAll(async () => {
  tmp = await tempDir("loramix-empty-");
  // A private testbed (generate caches into its bank) where ../../shared still resolves.
  symlinkSync(SHARED, join(tmp.dir, "shared"));
  testbed = join(tmp.dir, "repo", "testbed");
  await cp(join(REPO, "testbed"), testbed, { recursive: true, verbatimSymlinks: true });
});
afterAll(() => tmp.cleanup());

describe("empty answers", () => {
  it("the tally counts records whose outputs are all blank", () => {
    const tally = tallyAnswers([
      { input: "a", output: [""] },
      { input: "b", output: [" ", "\n"] },
      { input: "c", output: ["", "yes"] },
      { input: "d", output: [] },
    ]);
    expect(tally).toEqual({ withOutput: 3, empty: 2 });
    expect(checkAnswers("f.jsonl", tally)).toBe(
      "f.jsonl: 2 of 3 train records have an empty output; an adapter fitted to them learns to answer nothing to inputs like theirs",
    );
    expect(checkAnswers("f.jsonl", { withOutput: 3, empty: 0 })).toBeNull();
    expect(() => checkAnswers("f.jsonl", { withOutput: 3, empty: 3 })).toThrow(
      /^f\.jsonl: every train record's output is empty \(3 of 3\)/,
    );
  });

  it("generate with a model refuses all-empty outputs before scoring, naming the file", async () => {
    const data = dataset(join(tmp.dir, "all-empty.jsonl"), 80);
    const out = join(tmp.dir, "adapter");
    const { code, stderr } = await loramix(
      tmp.dir,
      "generate",
      testbed,
      "--data",
      data,
      "--model",
      TINY_MODEL,
      "--out",
      out,
    );
    expect(code, stderr).toBe(1);
    expect(stderr.trim().split("\n").at(-1)).toMatch(
      new RegExp(
        `^loramix: ${data.replace(/[.]/g, "\\.")}: every train record's output is empty \\(\\d+ of \\d+\\)`,
      ),
    );
    expect(stderr).not.toMatch(/^score:/m);
    expect(existsSync(out)).toBe(false);
  });

  it("train refuses all-empty outputs, naming the file", async () => {
    const data = dataset(join(tmp.dir, "all-empty-train.jsonl"), 80);
    const out = join(tmp.dir, "trained");
    const { code, stderr } = await loramix(
      tmp.dir,
      "train",
      "--model",
      TINY_MODEL,
      "--data",
      data,
      "--steps",
      "1",
      "--out",
      out,
    );
    expect(code, stderr).toBe(1);
    expect(stderr.trim().split("\n").at(-1)).toMatch(/every train record's output is empty/);
    expect(stderr).toContain(data);
    expect(existsSync(out)).toBe(false);
  });

  it("generate warns when some outputs are empty, naming the file, and writes the adapter", async () => {
    const data = dataset(join(tmp.dir, "some-empty.jsonl"), 20);
    const out = join(tmp.dir, "mixed");
    const { code, stderr } = await loramix(
      tmp.dir,
      "generate",
      testbed,
      "--data",
      data,
      "--select",
      "method",
      "--out",
      out,
    );
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(
      new RegExp(`${data.replace(/[.]/g, "\\.")}: \\d+ of \\d+ train records have an empty output`),
    );
    expect(existsSync(join(out, "adapter_model.safetensors"))).toBe(true);
  });
});
