/**
 * Kill-at-random: the bank-writing commands are SIGKILLed at a seeded moment, then the bank must
 * open, `bank verify` must find nothing but missing profiles, the output folder must be absent or
 * complete, and a rerun must finish. KILL_TRIALS (default 2) per command; more by setting it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openBank } from "../src/bank/store.js";
import { verifyBank } from "../src/bank/verify.js";
import { seededRandom } from "../src/util/prng.js";
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
});
