/**
 * Signals other than one Ctrl-C, and what a dead run leaves behind. Signals are sent when the run
 * is seen doing the work in question (its scratch folder appears in the private $TMPDIR, its
 * output's temp folder appears beside --out, the output itself appears), never after a fixed
 * delay, so the tests hold on a loaded 2-core machine as on a fast one.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUN_TAG } from "../src/util/runTag.js";
import { deadScratch, deadSiblings, removeLeftovers } from "../src/util/sweep.js";
import { REPO, SHARED, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;
const DATA = join(SNI_DIR, "task1146_country_capital.json");

interface Run {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** The CLI from source, with its own $TMPDIR. */
function start(cwd: string, tmp: string, args: string[]): Run {
  const child = spawn(process.execPath, ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args], {
    cwd,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => child.on("exit", (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, exit };
}

/**
 * Polls (every 5 ms) until `seen()` holds, then returns true; false when the run exited first.
 * The caller's signal thus lands while the run is in the state `seen` looks for.
 */
async function when(run: Run, seen: () => boolean): Promise<boolean> {
  let exited = false;
  void run.exit.then(() => {
    exited = true;
  });
  while (!exited) {
    if (seen()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

/** What loramix made in a $TMPDIR (tsx keeps its own cache there). */
const made = (tmp: string) => readdirSync(tmp).filter((name) => !name.startsWith("tsx-"));

let root: { dir: string; cleanup: () => Promise<void> };
/** A private copy of the testbed (generate caches into its bank), where ../../shared still resolves. */
let testbed: string;

beforeAll(async () => {
  root = await tempDir("loramix-signals-");
  symlinkSync(SHARED, join(root.dir, "shared"));
  testbed = join(root.dir, "repo", "testbed");
  await cp(join(REPO, "testbed"), testbed, { recursive: true, verbatimSymlinks: true });
});
afterAll(() => root.cleanup());

let n = 0;
/** A fresh working folder with its own $TMPDIR. */
async function workspace(): Promise<{ cwd: string; tmp: string }> {
  const cwd = join(root.dir, `w${n++}`);
  await mkdir(join(cwd, "tmp"), { recursive: true });
  return { cwd, tmp: join(cwd, "tmp") };
}

/** generate scoring candidates with llama.cpp (the converted model and the select scratch in $TMPDIR). */
const scoring = (out: string, finetune = 0) => [
  ...["generate", testbed, "--data", DATA, "--model", TINY_MODEL, "--select", "loss"],
  ...["--candidates", "2", "--score-examples", "4", "--context", "128", "--answer-tokens", "16"],
  ...["--finetune", String(finetune), "--out", out],
];

const mixing = (out: string) => [
  ...["generate", testbed, "--data", DATA, "--select", "method", "--method", "normalized", "--out", out],
];

describe("SIGTERM, SIGHUP and a second Ctrl-C", () => {
  const cases: { signals: NodeJS.Signals[]; code: number }[] = [
    { signals: ["SIGTERM"], code: 143 },
    { signals: ["SIGHUP"], code: 129 },
    { signals: ["SIGINT", "SIGINT"], code: 130 },
  ];
  for (const { signals, code } of cases) {
    it(`${signals.join(" + ")} during scoring: exit ${code}, nothing left in $TMPDIR, no output`, async () => {
      const { cwd, tmp } = await workspace();
      const run = start(cwd, tmp, scoring(join(cwd, "adapter")));
      let seen: string[] = [];
      const scoringNow = await when(run, () => {
        seen = made(tmp);
        return seen.some((f) => f.startsWith("loramix-select-")) && seen.some((f) => f.endsWith(".gguf"));
      });
      expect(scoringNow, "the run reached scoring").toBe(true);
      for (const s of signals) {
        run.child.kill(s);
        await new Promise((r) => setTimeout(r, 20));
      }
      const { code: got, signal, stderr } = await run.exit;
      expect({ code: got, signal }, stderr).toEqual({ code, signal: null });
      expect(made(tmp)).toEqual([]);
      expect(existsSync(join(cwd, "adapter"))).toBe(false);
    }, 300_000);
  }

  it("SIGTERM during fine-tuning: exit 143, the fine-tuning scratch removed", async () => {
    const { cwd, tmp } = await workspace();
    const run = start(cwd, tmp, scoring(join(cwd, "adapter"), 50));
    expect(await when(run, () => made(tmp).some((f) => f.startsWith("loramix-finetune-")))).toBe(true);
    run.child.kill("SIGTERM");
    const { code, stderr } = await run.exit;
    expect(code, stderr).toBe(143);
    expect(stderr.trim().split("\n").at(-1)).toBe("loramix: interrupted");
    expect(made(tmp)).toEqual([]);
    expect(existsSync(join(cwd, "adapter"))).toBe(false);
  }, 300_000);
});

describe("what a SIGKILLed run leaves, the next run removes", () => {
  it("scratch and the converted model in $TMPDIR: removed after the run died, never while a run lives", async () => {
    const { cwd, tmp } = await workspace();
    const scratchSeen = () => made(tmp).some((f) => f.startsWith("loramix-select-"));
    const killed = start(cwd, tmp, scoring(join(cwd, "killed")));
    expect(await when(killed, scratchSeen)).toBe(true);
    killed.child.kill("SIGKILL");
    await killed.exit;
    const left = made(tmp);
    expect(left.some((f) => f.endsWith(".gguf"))).toBe(true);
    expect(left.some((f) => f.startsWith("loramix-select-"))).toBe(true);

    // The next run removes the dead run's files as it starts; a run started while it works
    // removes nothing of its.
    const live = start(cwd, tmp, scoring(join(cwd, "live")));
    const swept = () => left.every((f) => !existsSync(join(tmp, f)));
    expect(await when(live, () => swept() && made(tmp).length > 0)).toBe(true);
    const during = await start(cwd, tmp, ["bank", "ls", testbed]).exit;
    expect(during.code, during.stderr).toBe(0);
    expect(during.stderr).not.toContain("removed");
    live.child.kill("SIGTERM");
    const { code, stderr } = await live.exit;
    // 0 when it finished first.
    expect([0, 143], stderr).toContain(code);
    expect(stderr).toContain(`removed ${left.length} temporary files of killed loramix runs`);
    expect(made(tmp)).toEqual([]);
  }, 300_000);

  it("a half-written output beside --out: removed by the next run writing there", async () => {
    const { cwd, tmp } = await workspace();
    const out = join(cwd, "adapter");
    const run = start(cwd, tmp, mixing(out));
    expect(await when(run, () => readdirSync(cwd).some((f) => f.startsWith(".adapter.tmp-")))).toBe(true);
    run.child.kill("SIGKILL");
    await run.exit;
    expect(readdirSync(cwd).filter((f) => f.startsWith(".adapter."))).not.toEqual([]);
    const { code, stderr } = await start(cwd, tmp, mixing(out)).exit;
    expect(code, stderr).toBe(0);
    expect(readdirSync(cwd).sort()).toEqual(["adapter", "tmp"]);
    expect(readdirSync(out)).toContain("adapter_model.safetensors");
  }, 300_000);
});

describe("the commit point", () => {
  /**
   * Ctrl-C the moment --out appears: the run has succeeded, so it exits 0, and says so when the
   * signal came in before it was gone (the work after the commit point is short by design).
   */
  async function ctrlCAtCommit(args: (out: string) => string[]): Promise<void> {
    const { cwd, tmp } = await workspace();
    const out = join(cwd, "adapter");
    const run = start(cwd, tmp, args(out));
    // Past the commit point little is left to do: a run that exits between two polls is no failure.
    if (await when(run, () => existsSync(out))) run.child.kill("SIGINT");
    const { code, stderr } = await run.exit;
    expect(code, stderr).toBe(0);
    if (stderr.includes("interrupting"))
      expect(stderr).toContain("finished before the interrupt took effect");
    expect(readdirSync(out)).toContain("adapter_model.safetensors");
    expect(made(tmp)).toEqual([]);
  }

  it("generate (mix): Ctrl-C after the output is in place exits 0", () => ctrlCAtCommit(mixing), 300_000);

  it(
    "generate (fine-tuned): Ctrl-C after the output is in place exits 0",
    () => ctrlCAtCommit((out) => scoring(out, 3)),
    300_000,
  );
});

describe("run tags: a dead run's leftovers, never a live run's or a stranger's", () => {
  /** A pid that was alive a moment ago and is not now. */
  function deadPid(): number {
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
      encoding: "utf8",
    });
    return Number(child.stdout);
  }
  const [ownPid, ownStart, host] = RUN_TAG.split(".") as [string, string, string];
  const otherHost = host === "000000" ? "111111" : "000000";

  it("judges $TMPDIR entries by pid, start time and host", async () => {
    const { dir, cleanup } = await tempDir("loramix-sweep-");
    try {
      const dead = deadPid();
      const names = {
        live: `loramix-select-${ownPid}.${ownStart}.${host}-aB3dE9`,
        reusedPid: `loramix-select-${ownPid}.${ownStart}1.${host}-aB3dE9`,
        dead: `loramix-fit-${dead}.${ownStart}.${host}-Qx81zz`,
        deadGguf: `loramix-gguf-${dead}.${ownStart}.${host}-0a1b2c3d-tinystories-656k.gguf`,
        legacyGguf: `.tinystories-656k.tmp-${dead}-0a1b2c3d.gguf`,
        otherHost: `loramix-select-${dead}.${ownStart}.${otherHost}-aB3dE9`,
        liveOther: `loramix-select-1.x.${host}-aB3dE9`,
        notOurs: "loramix-notes-aB3dE9",
        userFile: `.notes.tmp-${dead}-0a1b2c3d.txt`,
      };
      for (const name of Object.values(names)) await writeFile(join(dir, name), "");
      const found = (await deadScratch(dir)).map((l) => l.path.slice(dir.length + 1)).sort();
      expect(found).toEqual([names.dead, names.deadGguf, names.legacyGguf, names.reusedPid].sort());
    } finally {
      await cleanup();
    }
  });

  it("beside an output: removes dead temp copies, moves a set-aside old output back", async () => {
    const { dir, cleanup } = await tempDir("loramix-sweep-");
    try {
      const dead = deadPid();
      const out = join(dir, "adapter");
      const tag = `${dead}.${ownStart}.${host}`;
      mkdirSync(join(dir, `.adapter.tmp-${tag}-0a1b2c3d`));
      mkdirSync(join(dir, `.adapter.old-${tag}-0a1b2c3e`));
      await writeFile(join(dir, `.adapter.old-${tag}-0a1b2c3e`, "adapter_config.json"), "{}");
      await writeFile(join(dir, `.adapter.tmp-${dead}-0a1b2c3f`), "");
      await writeFile(join(dir, `.adapter.tmp-${ownPid}.${ownStart}.${host}-0a1b2c40`), "");
      await writeFile(join(dir, `.other.tmp-${tag}-0a1b2c41`), "");
      await removeLeftovers(await deadSiblings(out));
      expect(readdirSync(dir).sort()).toEqual(
        [
          `.adapter.tmp-${ownPid}.${ownStart}.${host}-0a1b2c40`,
          `.other.tmp-${tag}-0a1b2c41`,
          "adapter",
        ].sort(),
      );
      expect(await readFile(join(out, "adapter_config.json"), "utf8")).toBe("{}");
    } finally {
      await cleanup();
    }
  });
});
