/**
 * Kill-at-random: the bank-writing commands are SIGKILLed at a seeded moment, then the bank must
 * open, `bank verify` must find nothing but missing profiles, the output folder must be absent or
 * complete, and a rerun must finish. KILL_TRIALS (default 2) per command; more by setting it.
 * Ctrl-C (one SIGINT) must leave the same, and exit 130 with one line.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { cp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
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
const loramix = (cwd: string, ...args: string[]) => run(CLI[0], [...CLI[1], ...args], { cwd });

/** 60 real task files: about 2 s to import and 7 s to index here, so kills land mid-run. */
const TASKS = readdirSync(SNI_DIR)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .slice(0, 60);

/** Starts the command and SIGKILLs it after `ms` (or lets it finish); resolves when it is gone. */
function killAfter(cwd: string, ms: number, args: string[]): Promise<"killed" | "finished"> {
  const child: ChildProcess = spawn(CLI[0], [...CLI[1], ...args], { cwd, stdio: "ignore" });
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  return new Promise((resolve) => {
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === "SIGKILL" ? "killed" : "finished");
    });
  });
}

/**
 * Sends one SIGINT (Ctrl-C) `ms` after the start, or after the command's first message on stderr
 * with `fromOutput` (a short command's run is then hit wherever the machine's speed puts it). An
 * interrupted run must exit 130 with a one-line "interrupted" as its last message; one that
 * finished first exits 0.
 */
function interruptAfter(
  cwd: string,
  ms: number,
  args: string[],
  fromOutput = false,
): Promise<"interrupted" | "finished"> {
  const child = spawn(CLI[0], [...CLI[1], ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  let sent = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      sent = true;
      child.kill("SIGINT");
    }, ms);
  };
  child.stderr.on("data", (chunk: Buffer) => {
    if (fromOutput && timer === undefined) arm();
    stderr += chunk.toString();
  });
  if (!fromOutput) arm();
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      clearTimeout(timer);
      const last = stderr.trim().split("\n").at(-1) ?? "";
      if (code === 0) resolve("finished");
      else if (sent && code === 130 && last === "loramix: interrupted") resolve("interrupted");
      else reject(new Error(`exit ${code} after ${sent ? "SIGINT" : "no signal"}: ${last}`));
    });
  });
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
    for (let t = 0; t < TRIALS; t++) {
      const { dir, cleanup } = await tempDir("loramix-kill-");
      try {
        const tasks = join(dir, "tasks");
        mkdirSync(tasks);
        for (const f of TASKS) symlinkSync(join(SNI_DIR, f), join(tasks, f));
        await loramix(dir, "bank", "init", "bank", "--tokenizer", "mistral");
        // tsx needs about a second to start: kills land from before the first entry to near the end.
        outcomes.push(
          await killAfter(dir, 600 + random() * 2200, ["bank", "import-sni", "bank", "--tasks", tasks]),
        );
        await expectSoundBank(join(dir, "bank"));
        await loramix(dir, "bank", "import-sni", "bank", "--tasks", tasks);
        outcomes.push(
          await killAfter(dir, 800 + random() * 6000, ["bank", "index", "bank", "--threads", "1"]),
        );
        await expectSoundBank(join(dir, "bank"));
        await loramix(dir, "bank", "index", "bank", "--threads", "1");
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
    for (let t = 0; t < TRIALS * 2; t++) {
      const { dir, cleanup } = await tempDir("loramix-kill-gen-");
      try {
        const out = join(dir, "adapter");
        const args = ["generate", join(REPO, "testbed"), "--data", data, "--select", "method"];
        outcomes.push(
          await killAfter(dir, 1000 + random() * 2500, [...args, "--method", "normalized", "--out", out]),
        );
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
      for (let t = 0; t < TRIALS; t++) {
        outcomes.push(await killAfter(dir, 1200 + random() * 4000, args));
        await expectSoundBank(bank);
        outcomes.push(await interruptAfter(dir, 1200 + random() * 4000, args));
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
    // The run takes about a second on a fast machine: the SIGINTs land within the time an
    // uninterrupted run here spends between its first message and its exit.
    const span = await (async () => {
      const { dir, cleanup } = await tempDir("loramix-int-gen-");
      try {
        const child = spawn(CLI[0], [...CLI[1], ...argsFor(join(dir, "adapter"))], {
          cwd: dir,
          stdio: ["ignore", "ignore", "pipe"],
        });
        let first: number | undefined;
        child.stderr.on("data", () => {
          first ??= performance.now();
        });
        const code = await new Promise((resolve) => child.on("exit", resolve));
        expect(code).toBe(0);
        return performance.now() - (first as number);
      } finally {
        await cleanup();
      }
    })();
    for (let t = 0; t < TRIALS * 2; t++) {
      const { dir, cleanup } = await tempDir("loramix-int-gen-");
      try {
        const out = join(dir, "adapter");
        const args = argsFor(out);
        outcomes.push(await interruptAfter(dir, random() * 0.8 * span, args, true));
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
      await loramix(dir, ...build("clean"));
      for (let t = 0; t < TRIALS; t++) {
        outcomes.push(await killAfter(dir, 1500 + random() * 15000, build("resumed")));
        // Whatever a kill leaves: whole adapters only, and no temporary files.
        const adapters = join(dir, "resumed", "adapters");
        for (const task of existsSync(adapters) ? readdirSync(adapters) : [])
          expect(readdirSync(join(adapters, task))).toContain("adapter_model.safetensors");
        if (existsSync(join(dir, "resumed", "bank.sqlite"))) await expectSoundBank(join(dir, "resumed"));
      }
      outcomes.push(await interruptAfter(dir, 1500 + random() * 10000, build("resumed")));
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
