import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { REPO } from "./shared.js";

const run = promisify(execFile);
// Resolved from the repo: the CLI runs from a temp folder, where a bare "tsx" would not resolve.
const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;

/** The CLI from its sources as a user runs it, from `cwd`: its exit code and both streams. */
export function loramix(
  cwd: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args], {
    cwd,
    maxBuffer: 1 << 26,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}
