/**
 * Kill-at-random: the bank-writing commands are SIGKILLed at a seeded moment (a fraction of the
 * time an uninterrupted run of the same command takes on this machine), then the bank must
 * open, `bank verify` must find nothing but missing profiles, the output folder must be absent or
 * complete, and a rerun must finish. KILL_TRIALS (default 2) per command; more by setting it.
 * Ctrl-C (one SIGINT) must leave the same, and exit 130 with one line.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { cp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openBank } from "../src/bank/store.js";
import { verifyBank } from "../src/bank/verify.js";
import { TRAIN_RECORD } from "../src/formats/fileNames.js";
import { seededRandom } from "../src/util/prng.js";
import { loadBankMlp } from "../src/weights/bankMlp.js";
import { REPO, SNI_DIR, tempDir } from "./helpers/shared.js";

const TRIALS = Number(process.env.KILL_TRIALS ?? 2);
const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;
const CLI = [process.execPath, ["--import", TSX, join(REPO, "src/cli/main.ts")]] as const;
const run = promisify(execFile);
/**
 * The killed runs' own $TMPDIR: what a SIGKILL leaves there is removed by the next run that finds
 * it, with a line on stderr, which must not land in another test file's run.
 */
const KILLED_TMP = mkdtempSync(join(tmpdir(), "loramix-kill-tmp-"));
const ENV = { ...process.env, TMPDIR: KILLED_TMP };
const loramix = (cwd: string, ...args: string[]) => run(CLI[0], [...CLI[1], ...args], { cwd, env: ENV });

/** 60 real task files: about 1 s to import and 3 s to index on a 2-core VM. */
const TASKS = readdirSync(SNI_DIR)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .slice(0, 60);

/**
 * Runs the command and, given `send`, sends its signal `ms` after the command's first message on
 * stderr, so that the signal lands in the command's own work (not in tsx's start-up) wherever the
 * machine's speed puts it. `span`: milliseconds from that first message to the exit.
 */
function runCommand(cwd: string, args: string[], send?: { signal: NodeJS.Signals; ms: number }) {
  const child: ChildProcess = spawn(CLI[0], [...CLI[1], ...args], {
    cwd,
    env: ENV,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const started = performance.now();
  let first: number | undefined;
  let stderr = "";
  let timer: NodeJS.Timeout | undefined;
  let sent = false;
  child.stderr?.on("data", (chunk: Buffer) => {
    first ??= performance.now();
    if (send)
      timer ??= setTimeout(() => {
        sent = true;
        child.kill(send.signal);
      }, send.ms);
    stderr += chunk.toString();
  });
  return new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    sent: boolean;
    last: string;
    span: number;
  }>((resolve) => {
    child.on("exit", (code, got) => {
      clearTimeout(timer);
      const span = performance.now() - (first ?? started);
      resolve({ code, signal: got, sent, last: stderr.trim().split("\n").at(-1) ?? "", span });
    });
  });
}

/** SIGKILLs the command `ms` after its first message (or lets it finish); resolves when it is gone. */
async function killAfter(cwd: string, ms: number, args: string[]): Promise<"killed" | "finished"> {
  const { signal } = await runCommand(cwd, args, { signal: "SIGKILL", ms });
  return signal === "SIGKILL" ? "killed" : "finished";
}

/**
 * Sends one SIGINT (Ctrl-C) `ms` after the command's first message. An interrupted run must exit
 * 130 with a one-line "interrupted" as its last message; one that finished first exits 0.
 */
async function interruptAfter(cwd: string, ms: number, args: string[]): Promise<"interrupted" | "finished"> {
  const { code, sent, last } = await runCommand(cwd, args, { signal: "SIGINT", ms });
  if (code === 0) return "finished";
  if (sent && code === 130 && last === "loramix: interrupted") return "interrupted";
  throw new Error(`exit ${code} after ${sent ? "SIGINT" : "no signal"}: ${last}`);
}

/**
 * How long an uninterrupted run of the command spends from its first message to its exit (ms):
 * signals are sent at random moments within it, since fixed delays that land mid-run on one
 * machine land after the end on a faster one.
 */
async function activeSpan(cwd: string, args: string[]): Promise<number> {
  const { code, span } = await runCommand(cwd, args);
  expect(code, `${args.join(" ")} ran uninterrupted`).toBe(0);
  return span;
}

/** `activeSpan` in a scratch folder of its own. */
async function spanIn(prefix: string, time: (dir: string) => Promise<number>): Promise<number> {
  const { dir, cleanup } = await tempDir(prefix);
  try {
    return await time(dir);
  } finally {
    await cleanup();
  }
}

/** A private copy of the shipped testbed (5 MB), its task-file link pointing at ../shared. */
async function testbedCopy(dir: string): Promise<string> {
  const copy = join(dir, "testbed");
  await cp(join(REPO, "testbed"), copy, { recursive: true, verbatimSymlinks: true });
  await rm(join(copy, "sni"));
  symlinkSync(SNI_DIR, join(copy, "sni"));
  return copy;
}

/** Every file below `dir` with its bytes' hash, the testbed's own log and bank left out. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path)] = createHash("sha256")
      .update(await readFile(path))
      .digest("hex");
  }
  return out;
}

/** Everything `bank verify` may report after a kill: profiles the killed run had not written yet. */
async function expectSoundBank(dir: string): Promise<void> {
  const bank = await openBank(dir);
  try {
    const report = await verifyBank(bank);
    expect(report.problems.filter((p) => p.kind !== "stale-profile")).toEqual([]);
  } finally {
    bank.close();
  }
}

describe(`SIGKILL at a random moment (${TRIALS} trials per command)`, () => {
  it("bank import-sni and bank index: the bank opens, verifies, and a rerun completes", async () => {
    const random = seededRandom(11);
    const outcomes: string[] = [];
    let spans: [number, number] = [0, 0];
    for (let t = 0; t < TRIALS; t++) {
      const { dir, cleanup } = await tempDir("loramix-kill-");
      try {
        const tasks = join(dir, "tasks");
        mkdirSync(tasks);
        for (const f of TASKS) symlinkSync(join(SNI_DIR, f), join(tasks, f));
        await loramix(dir, "bank", "init", "bank", "--tokenizer", "mistral");
        const importing = ["bank", "import-sni", "bank", "--tasks", tasks];
        const indexing = ["bank", "index", "bank", "--threads", "1"];
        if (t === 0) {
          // The first trial's bank is built once uninterrupted, to time both commands, and started over.
          spans = [await activeSpan(dir, importing), await activeSpan(dir, indexing)];
          await rm(join(dir, "bank"), { recursive: true });
          await loramix(dir, "bank", "init", "bank", "--tokenizer", "mistral");
        }
        const [importSpan, indexSpan] = spans;
        outcomes.push(await killAfter(dir, random() * 0.9 * importSpan, importing));
        await expectSoundBank(join(dir, "bank"));
        await loramix(dir, ...importing);
        outcomes.push(await killAfter(dir, random() * 0.9 * indexSpan, indexing));
        await expectSoundBank(join(dir, "bank"));
        await loramix(dir, ...indexing);
        const bank = await openBank(join(dir, "bank"));
        try {
          expect(bank.entries()).toHaveLength(TASKS.length);
          expect((await verifyBank(bank)).problems).toEqual([]);
        } finally {
          bank.close();
        }
        expect(readdirSync(join(dir, "bank")).filter((f) => f.includes(".tmp"))).toEqual([]);
      } finally {
        await cleanup();
      }
    }
    process.stderr.write(`kill outcomes: ${outcomes.join(" ")}\n`);
    // A trial that finished before its kill proves nothing; some must land mid-run (how many
    // depends on the machine's speed, hence no higher bar).
    expect(outcomes).toContain("killed");
  }, 600_000);

  it("generate: the output folder is absent or complete, never partial", async () => {
    const random = seededRandom(12);
    const outcomes: string[] = [];
    const data = join(SNI_DIR, "task1146_country_capital.json");
    const argsFor = (out: string) => [
      ...["generate", join(REPO, "testbed"), "--data", data, "--select", "method"],
      ...["--method", "normalized", "--out", out],
    ];
    const span = await spanIn("loramix-kill-gen-", (dir) => activeSpan(dir, argsFor(join(dir, "adapter"))));
    for (let t = 0; t < TRIALS * 2; t++) {
      const { dir, cleanup } = await tempDir("loramix-kill-gen-");
      try {
        const out = join(dir, "adapter");
        outcomes.push(await killAfter(dir, random() * 0.9 * span, argsFor(out)));
        if (existsSync(out)) {
          expect(readdirSync(out).sort()).toEqual([
            ".loramix-output",
            "adapter_config.json",
            "adapter_model.safetensors",
            "loramix.json",
          ]);
        }
        await expectSoundBank(join(REPO, "testbed"));
      } finally {
        await cleanup();
      }
    }
    process.stderr.write(`kill outcomes: ${outcomes.join(" ")}\n`);
    // A trial that finished before its kill proves nothing; some must land mid-run (how many
    // depends on the machine's speed, hence no higher bar).
    expect(outcomes).toContain("killed");
  }, 600_000);

  it("train-mlp: the bank verifies after a kill or a Ctrl-C, and a rerun stores the MLP", async () => {
    const random = seededRandom(13);
    const outcomes: string[] = [];
    const { dir, cleanup } = await tempDir("loramix-kill-mlp-");
    try {
      const bank = await testbedCopy(dir);
      const args = ["train-mlp", bank, "--metric", "js", "--epochs", "200", "--hidden", "16"];
      // Timed once uninterrupted: the kills then also hit a run replacing a stored MLP.
      const span = await activeSpan(dir, args);
      for (let t = 0; t < TRIALS; t++) {
        outcomes.push(await killAfter(dir, random() * 0.9 * span, args));
        await expectSoundBank(bank);
        outcomes.push(await interruptAfter(dir, random() * 0.9 * span, args));
        await expectSoundBank(bank);
      }
      await loramix(dir, ...args);
      const opened = await openBank(bank);
      try {
        expect((await verifyBank(opened)).problems).toEqual([]);
        expect(await loadBankMlp(opened, { metric: "js", hidden: 16, seed: 0 })).toBeDefined();
      } finally {
        opened.close();
      }
    } finally {
      await cleanup();
    }
    process.stderr.write(`train-mlp outcomes: ${outcomes.join(" ")}\n`);
    expect(outcomes).toContain("killed");
    expect(outcomes).toContain("interrupted");
  }, 600_000);

  it("generate: Ctrl-C leaves no output or a complete one, and exits 130 with one line", async () => {
    const random = seededRandom(14);
    const outcomes: string[] = [];
    const data = join(SNI_DIR, "task1146_country_capital.json");
    const argsFor = (out: string) => [
      "generate",
      join(REPO, "testbed"),
      "--data",
      data,
      "--select",
      "method",
      "--out",
      out,
    ];
    const span = await spanIn("loramix-int-gen-", (dir) => activeSpan(dir, argsFor(join(dir, "adapter"))));
    for (let t = 0; t < TRIALS * 2; t++) {
      const { dir, cleanup } = await tempDir("loramix-int-gen-");
      try {
        const out = join(dir, "adapter");
        const args = argsFor(out);
        outcomes.push(await interruptAfter(dir, random() * 0.9 * span, args));
        if (existsSync(out)) expect(readdirSync(out)).toContain("adapter_model.safetensors");
        expect(readdirSync(dir).filter((f) => f !== "adapter")).toEqual([]);
      } finally {
        await cleanup();
      }
    }
    process.stderr.write(`generate SIGINT outcomes: ${outcomes.join(" ")}\n`);
    expect(outcomes).toContain("interrupted");
  }, 600_000);

  it("testbed build: after kills and a Ctrl-C, the resumed build equals an uninterrupted one byte for byte", async () => {
    const random = seededRandom(15);
    const outcomes: string[] = [];
    const selection = JSON.parse(await readFile(join(REPO, "testbed/selection.json"), "utf8")) as {
      families: { tasks: string[] }[];
    };
    const tasks = (selection.families[0]?.tasks ?? []).slice(0, 2).join(",");
    const build = (out: string) => [
      "testbed",
      "build",
      "--out",
      out,
      "--tasks",
      tasks,
      "--steps",
      "3",
      "--limit",
      "3",
      "--jobs",
      "1",
    ];
    const { dir, cleanup } = await tempDir("loramix-kill-tb-");
    try {
      const span = await activeSpan(dir, build("clean"));
      for (let t = 0; t < TRIALS; t++) {
        outcomes.push(await killAfter(dir, random() * 0.9 * span, build("resumed")));
        // Whatever a kill leaves: whole adapters only, and no temporary files.
        const adapters = join(dir, "resumed", "adapters");
        for (const task of existsSync(adapters) ? readdirSync(adapters) : [])
          expect(readdirSync(join(adapters, task))).toContain("adapter_model.safetensors");
        if (existsSync(join(dir, "resumed", "bank.sqlite"))) await expectSoundBank(join(dir, "resumed"));
      }
      outcomes.push(await interruptAfter(dir, random() * 0.9 * span, build("resumed")));
      await loramix(dir, ...build("resumed"));
      const [clean, resumed] = [await tree(join(dir, "clean")), await tree(join(dir, "resumed"))];
      expect(Object.keys(resumed).filter((f) => f.includes(".tmp"))).toEqual([]);
      // The adapters and their configs are the same to the byte, their training records but for
      // the timings; the log (timings) and the bank (dates) differ by nature.
      const same = (files: Record<string, string>) =>
        Object.fromEntries(
          Object.entries(files).filter(
            ([f]) => (f.startsWith("adapters/") && !f.endsWith(TRAIN_RECORD)) || f === "selection.json",
          ),
        );
      expect(Object.keys(same(clean)).length).toBeGreaterThanOrEqual(6);
      expect(same(resumed)).toEqual(same(clean));
      const record = async (root: string, task: string) => {
        const {
          seconds: _s,
          tokensPerSecond: _t,
          ...rest
        } = JSON.parse(await readFile(join(dir, root, "adapters", task, TRAIN_RECORD), "utf8"));
        return rest;
      };
      for (const task of tasks.split(","))
        expect(await record("resumed", task)).toEqual(await record("clean", task));
      await expectSoundBank(join(dir, "resumed"));
    } finally {
      await cleanup();
    }
    process.stderr.write(`testbed build outcomes: ${outcomes.join(" ")}\n`);
    expect(outcomes).toContain("killed");
  }, 900_000);
});
