import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from "node:fs";
import { cp, mkdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { REPO } from "./shared.js";

/**
 * A real llama-server for the tests, built once per machine from the llama.cpp source that
 * node-llama-cpp ships (its gitRelease.bundle), so that it is the llama.cpp the llama backend runs.
 * The build is cached outside the repo under ~/.cache/loramix (LORAMIX_CACHE to move it), keyed by
 * the bundle's hash; it happens in a temporary folder renamed into place when complete, so a killed
 * build leaves no half cache, and a lock file (with its owner's pid) keeps concurrent test files
 * from building twice.
 */

const BUNDLE = join(REPO, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
const CACHE = process.env.LORAMIX_CACHE ?? join(homedir(), ".cache/loramix");
/**
 * GGML_NATIVE=OFF: a build for the CPU it ran on died with "Illegal instruction" on another of
 * these machines. Static libraries, so the binary can be moved into the cache on its own. No curl
 * or OpenSSL: the tests serve local files over plain HTTP on 127.0.0.1.
 */
export const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DLLAMA_CURL=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DGGML_NATIVE=OFF",
  "-DBUILD_SHARED_LIBS=OFF",
];

function bundleKey(): string {
  return createHash("sha256").update(readFileSync(BUNDLE)).digest("hex").slice(0, 16);
}

/** Where the built binary lives (it may not exist yet). */
export function llamaServerPath(): string {
  return join(CACHE, `llama-server-${bundleKey()}`, "llama-server");
}

/**
 * Throws one line naming the first tool the build needs that is missing, when the binary is not
 * cached yet; `who` names the test file, like the Chromium check of report.test.ts.
 */
export function checkBuildTools(who: string): void {
  if (existsSync(llamaServerPath())) return;
  const cxx = process.env.CXX ?? "c++";
  for (const [tool, pkg] of [
    ["git", "git"],
    ["cmake", "cmake"],
    ["make", "make"],
    [cxx, "g++"],
  ] as const) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error(
        `${who} builds llama-server from node-llama-cpp's llama.cpp source and needs ${tool}: apt-get install ${pkg} (.ci/run does)`,
      );
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function run(command: string, args: string[], log: number): Promise<void> {
  return new Promise((resolve, reject) => {
    writeSync(log, `$ ${command} ${args.join(" ")}\n`);
    const child = spawn(command, args, { stdio: ["ignore", log, log] });
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args[0]} ... failed (${signal ?? `exit ${code}`})`)),
    );
  });
}

/**
 * The llama-server binary, built first if this machine has none for this bundle. `note` is told
 * when a build starts and how long it took.
 */
export async function llamaServerBinary(note: (line: string) => void = () => {}): Promise<string> {
  const bin = llamaServerPath();
  const key = bundleKey();
  const lock = join(CACHE, `llama-server-${key}.lock`);
  await mkdir(CACHE, { recursive: true });
  for (;;) {
    if (existsSync(bin)) return bin;
    let fd: number;
    try {
      fd = openSync(lock, "wx");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(readFileSync(lock, "utf8"));
      // An empty lock is one being written; a dead owner's is stale.
      if (owner > 0 && !alive(owner)) await unlink(lock).catch(() => {});
      else await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    writeSync(fd, String(process.pid));
    closeSync(fd);
    try {
      if (!existsSync(bin)) await build(key, bin, note);
    } finally {
      await unlink(lock).catch(() => {});
    }
  }
}

async function build(key: string, bin: string, note: (line: string) => void): Promise<void> {
  // Leftovers of builds whose process died.
  for (const name of readdirSync(CACHE)) {
    const m = new RegExp(`^llama-server-${key}\\.tmp-(\\d+)$`).exec(name);
    if (m && !alive(Number(m[1]))) await rm(join(CACHE, name), { recursive: true, force: true });
  }
  const tmp = join(CACHE, `llama-server-${key}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const logFile = join(tmp, "build.log");
  const log = openSync(logFile, "a");
  const started = performance.now();
  note(`building llama-server from ${BUNDLE} into ${CACHE} (once per machine, ~10 minutes on 2 cores)`);
  try {
    const src = join(tmp, "src");
    const out = join(tmp, "build");
    await run("git", ["clone", "--quiet", BUNDLE, src], log);
    await run("cmake", ["-S", src, "-B", out, ...CMAKE_FLAGS], log);
    await run("cmake", ["--build", out, "--target", "llama-server", "-j2"], log);
    const seconds = Math.round((performance.now() - started) / 1000);
    const done = join(tmp, "done");
    await mkdir(done);
    await cp(join(out, "bin/llama-server"), join(done, "llama-server"));
    await writeFile(
      join(done, "BUILD.json"),
      `${JSON.stringify({ bundle: BUNDLE, key, flags: CMAKE_FLAGS, seconds, date: new Date().toISOString() }, null, 2)}\n`,
    );
    await rename(done, dirname(bin));
    note(`built llama-server in ${seconds} s: ${bin}`);
  } catch (error) {
    const tail = await lastLines(logFile, 5);
    throw new Error(`building llama-server failed: ${(error as Error).message}; log: ${logFile}\n${tail}`);
  } finally {
    closeSync(log);
  }
  await rm(tmp, { recursive: true, force: true });
}

async function lastLines(file: string, n: number): Promise<string> {
  let text = "";
  for await (const chunk of createReadStream(file, { encoding: "utf8" })) text = (text + chunk).slice(-8192);
  return text.trimEnd().split("\n").slice(-n).join("\n");
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface RunningServer {
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  child: ChildProcess;
  /** The server's last output lines, for failure messages. */
  output: () => string;
  close: () => Promise<void>;
}

/**
 * Starts `bin` with `args` (which must bind it to 127.0.0.1 and `port`), waits until GET /health
 * answers 200, and returns it; a server that exits or is not ready within a minute fails with its
 * last output.
 */
export async function startLlamaServer(bin: string, args: string[], port: number): Promise<RunningServer> {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<string>((resolve) =>
    child.on("exit", (code, signal) => resolve(`exited (${signal ?? code})`)),
  );
  const origin = `http://127.0.0.1:${port}`;
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(killer);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${origin}/health`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    const gone = await Promise.race([exited, new Promise((r) => setTimeout(r, 250, null))]);
    if (gone !== null || Date.now() > deadline) {
      await close();
      throw new Error(
        `llama-server ${args.join(" ")} ${gone ?? "was not ready within 60 s"}:\n${output.slice(-2000)}`,
      );
    }
  }
  return { port, origin, child, output: () => output, close };
}
