/**
 * One `--out` rule for every command that writes: a new path, an empty folder, or an earlier
 * output of the same kind that loramix wrote; a user's file or folder is refused with one line,
 * before the work, and left as it was.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cp } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkOutDir } from "../src/util/atomic.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;
const TASK = join(SNI_DIR, "task1146_country_capital.json");
const ADAPTER = join(REPO, "testbed/adapters/task022_cosmosqa_passage_inappropriate_binary");

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

/** A refusal: exit 1, one line naming `path`, no stack. */
function expectRefused(result: { code: number; stderr: string }, path: string): void {
  expect(result.code, result.stderr).toBe(1);
  const lines = result.stderr.trim().split("\n");
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^loramix: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: `));
  expect(result.stderr).not.toMatch(/EEXIST|internal error|\n\s+at /);
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
/** A fresh folder holding one file of the user's, `mine`, with known bytes. */
function userFolder(mine = "predictions.jsonl"): { cwd: string; dir: string; file: string } {
  const cwd = join(tmp.dir, `c${n++}`);
  const dir = join(cwd, "out");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, mine);
  writeFileSync(file, "the user's own\n");
  return { cwd, dir, file };
}
beforeAll(async () => {
  tmp = await tempDir("loramix-outputs-");
});
afterAll(() => tmp.cleanup());

const evalArgs = (out: string) => [
  ...["eval", "--model", TINY_MODEL, "--data", TASK, "--limit", "2", "--max-new-tokens", "4", "--out", out],
];

describe("eval --out", () => {
  it("refuses a folder holding the user's predictions.jsonl, and a file, before loading the model", async () => {
    const { cwd, dir, file } = userFolder();
    expectRefused(await loramix(cwd, ...evalArgs(dir)), dir);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
    expectRefused(await loramix(cwd, ...evalArgs(file)), file);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
  });

  it("writes a new folder, and replaces its own earlier output", async () => {
    const cwd = join(tmp.dir, `c${n++}`);
    mkdirSync(cwd);
    const out = join(cwd, "eval");
    for (let k = 0; k < 2; k++) {
      const { code, stderr } = await loramix(cwd, ...evalArgs(out));
      expect(code, stderr).toBe(0);
      expect(readFileSync(join(out, "predictions.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
    }
  });
});

describe("an eval folder from before the marker", () => {
  it("is replaced when it holds loramix's two files, refused when metrics.json is the user's", async () => {
    const { dir } = userFolder();
    writeFileSync(
      join(dir, "metrics.json"),
      `${JSON.stringify({ std: "population (ddof 0) over records" }, null, 2)}\n`,
    );
    await checkOutDir(dir, "eval");
    writeFileSync(join(dir, "metrics.json"), "{}\n");
    await expect(checkOutDir(dir, "eval")).rejects.toThrow(
      `${dir}: the folder holds files loramix did not write`,
    );
  });
});

describe("file outputs: profile, distances, convert", () => {
  it("profile: refuses the user's file, replaces its own profile", async () => {
    const { cwd, file } = userFolder("profile.json");
    expectRefused(await loramix(cwd, "profile", TASK, "--tokenizer", TINY_MODEL, "--out", file), file);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
    const own = join(cwd, "own.json");
    for (let k = 0; k < 2; k++) {
      const { code, stderr } = await loramix(cwd, "profile", TASK, "--tokenizer", TINY_MODEL, "--out", own);
      expect(code, stderr).toBe(0);
    }
  });

  it("distances: refuses the user's file, replaces its own matrix", async () => {
    const { cwd, file } = userFolder("matrix.csv");
    const bank = join(cwd, "testbed");
    await cp(join(REPO, "testbed"), bank, { recursive: true, verbatimSymlinks: true });
    expectRefused(await loramix(cwd, "distances", bank, "--metric", "js", "--out", file), file);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
    for (const own of ["own.csv", "own.json"])
      for (let k = 0; k < 2; k++) {
        const { code, stderr } = await loramix(cwd, "distances", bank, "--metric", "js", "--out", own);
        expect(code, stderr).toBe(0);
      }
  });

  it("convert: refuses the user's file (a GGUF loramix did not write included), replaces its own", async () => {
    const { cwd, file } = userFolder("model.gguf");
    expectRefused(await loramix(cwd, "convert", "hf-to-gguf", TINY_MODEL, "--out", file), file);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
    const model = join(cwd, "own.gguf");
    for (let k = 0; k < 2; k++) {
      const { code, stderr } = await loramix(cwd, "convert", "hf-to-gguf", TINY_MODEL, "--out", model);
      expect(code, stderr).toBe(0);
    }
    const adapter = join(cwd, "adapter.gguf");
    const toGguf = (out: string) =>
      loramix(cwd, "convert", "peft-to-gguf", ADAPTER, "--base", model, "--out", out);
    expectRefused(await toGguf(file), file);
    for (let k = 0; k < 2; k++) {
      const { code, stderr } = await toGguf(adapter);
      expect(code, stderr).toBe(0);
    }
    // loramix's own model is not an adapter: kept, as a folder output of another kind is.
    expectRefused(await toGguf(model), model);
  });
});

describe("folders that are not --out", () => {
  it("bank init keeps a different tokenizer.json of the user's", async () => {
    const { cwd, dir, file } = userFolder("tokenizer.json");
    expectRefused(await loramix(cwd, "bank", "init", dir, "--tokenizer", TINY_MODEL), file);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
  });

  it("testbed build refuses a folder of the user's", async () => {
    const { cwd, dir, file } = userFolder("TASKS.md");
    expectRefused(await loramix(cwd, "testbed", "build", "--out", dir, "--steps", "1"), dir);
    expect(readFileSync(file, "utf8")).toBe("the user's own\n");
  });
});
