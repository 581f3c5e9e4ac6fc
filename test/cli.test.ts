import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { defineCommand } from "citty";
import { describe, expect, it } from "vitest";
import { checkArgs, didYouMean } from "../src/cli/strictArgs.js";
import { checkOutDir, OUTPUT_MARKER, writeDirAtomic } from "../src/util/atomic.js";
import { REPO, SNI_DIR, tempDir } from "./helpers/shared.js";

const run = promisify(execFile);
// Resolved from the repo: the CLI runs from a temp folder, where a bare "tsx" would not resolve.
const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;

/** The CLI as a user runs it, from a temp folder. */
function loramix(cwd: string, ...args: string[]) {
  return run(process.execPath, ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args], { cwd }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

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
    await expect(checkArgs(tree, ["generate", "--quiet"])).rejects.toMatchObject({ code: "USAGE" });
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
      expect(readdirSync(dir)).toEqual(["unrelated.txt"]);
    } finally {
      await cleanup();
    }
  }, 60_000);
});
