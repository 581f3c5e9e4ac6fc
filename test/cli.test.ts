import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { defineCommand } from "citty";
import { describe, expect, it } from "vitest";
import { checkArgs, didYouMean } from "../src/cli/strictArgs.js";
import { REPO, tempDir } from "./helpers/shared.js";

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
