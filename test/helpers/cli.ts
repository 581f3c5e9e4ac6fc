import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO } from "./shared.js";

// Resolved from the repo: the CLI runs from a temp folder, where a bare "tsx" would not resolve.
const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** The CLI as a user runs it, from `cwd`; never rejects. `onSpawn` gets the process id (to signal it). */
export function runLoramix(
  args: string[],
  {
    cwd,
    env = {},
    timeoutMs = 300_000,
    onSpawn,
  }: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; onSpawn?: (pid: number) => void },
): Promise<CliRun> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = execFile(
      process.execPath,
      ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args],
      { cwd, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr,
          seconds: (performance.now() - started) / 1000,
        }),
    );
    onSpawn?.(child.pid as number);
  });
}

/** `runLoramix` with the arguments spread, for the many tests that need neither env nor pid. */
export function loramix(cwd: string, ...args: string[]): Promise<CliRun> {
  return runLoramix(args, { cwd });
}
