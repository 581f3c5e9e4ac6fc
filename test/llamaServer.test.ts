import { existsSync } from "node:fs";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfToGguf } from "../src/convert/hfToGguf.js";
import { peftToGguf } from "../src/convert/peftToGguf.js";
import { runLoramix } from "./helpers/cli.js";
import {
  checkBuildTools,
  freePort,
  llamaServerBinary,
  type RunningServer,
  startLlamaServer,
} from "./helpers/llamaServer.js";
import { readmeSection, shellCommands, shellLines } from "./helpers/readme.js";
import { REPO, TINY_MODEL, tempDir } from "./helpers/shared.js";

/**
 * A real llama-server, built from the llama.cpp source node-llama-cpp ships (test/helpers/
 * llamaServer.ts), serving the TinyStories base with two testbed adapters: what `eval --backend
 * openai` and `generate --score-url` do against it, beside what the llama backend does.
 */
checkBuildTools("llamaServer.test.ts");

const TOKENIZER = join(TINY_MODEL, "tokenizer.json");
/** Each with its own adapter, loaded on the server in this order (its --lora-id). */
const TASKS = ["task195_sentiment140_classification", "task092_check_prime_classification"];
/** Super-NI prompts far longer than the model's 512 tokens. */
const LONG = "task1385_anli_r1_entailment";
const LIMIT = "20";
const NEW_TOKENS = "16";

let bin: string;
let work: string;
let cleanup: (() => Promise<void>) | undefined;
let base: string;
let server: RunningServer;
const running: RunningServer[] = [];

beforeAll(async () => {
  // Built once per machine (about ten minutes on two cores), then cached outside the repo.
  bin = await llamaServerBinary((line) => process.stderr.write(`${line}\n`));
  ({ dir: work, cleanup } = await tempDir("loramix-llama-server-"));
  base = join(work, "base.gguf");
  await hfToGguf({ modelDir: TINY_MODEL, out: base });
  const loras: string[] = [];
  for (const task of TASKS) {
    const out = join(work, `${task}.gguf`);
    await peftToGguf({ adapterDir: join(REPO, "testbed/adapters", task), base: TINY_MODEL, out });
    loras.push("--lora", out);
  }
  const port = await freePort();
  server = await startLlamaServer(
    bin,
    [
      "-m",
      base,
      ...loras,
      "--lora-init-without-apply",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--threads",
      "1",
    ],
    port,
  );
  running.push(server);
}, 90 * 60_000);

afterAll(async () => {
  await Promise.all(running.map((s) => s.close()));
  await cleanup?.();
});

function loramix(args: string[], cwd = work) {
  return runLoramix(args, { cwd });
}

async function predictions(out: string): Promise<string[]> {
  const text = await readFile(join(out, "predictions.jsonl"), "utf8");
  return text
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { prediction: string }).prediction);
}

async function metrics(out: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(out, "metrics.json"), "utf8"));
}

const data = (task: string) => join(REPO, "testbed/sni", `${task}.json`);
/** What every eval here runs on: the task's first test records, short answers. */
const records = (task: string) => ["--data", data(task), "--limit", LIMIT, "--max-new-tokens", NEW_TOKENS];
let outs = 0;
const nextOut = () => join(work, `out-${outs++}`);

/** `eval` on the llama backend (llama.cpp in-process); the predictions, memoized by task and adapter. */
const llamaRuns = new Map<string, Promise<string[]>>();
function llamaPredictions(task: string, adapter: string | null): Promise<string[]> {
  const key = `${task} ${adapter}`;
  let run = llamaRuns.get(key);
  if (run === undefined) {
    const out = nextOut();
    // llama.cpp's greedy answers can change with the thread count: the same as the server's.
    const args = ["eval", "--model", TINY_MODEL, "--threads", "1", ...records(task)];
    if (adapter !== null) args.push("--adapter", join(REPO, "testbed/adapters", adapter));
    run = loramix([...args, "--out", out]).then((r) => {
      expect(r.code, r.stderr).toBe(0);
      return predictions(out);
    });
    llamaRuns.set(key, run);
  }
  return run;
}

/** `eval --backend openai` against the test's server with token-id prompts; `extra` options last. */
async function serverEval(task: string, ...extra: string[]) {
  const out = nextOut();
  const run = await loramix([
    "eval",
    "--backend",
    "openai",
    "--base-url",
    `${server.origin}/v1`,
    "--model-name",
    "base",
    "--prompt-ids",
    "--tokenizer",
    TOKENIZER,
    ...records(task),
    "--out",
    out,
    ...extra,
  ]);
  return { ...run, out };
}

async function setGlobalScales(scales: number[]): Promise<void> {
  const response = await fetch(`${server.origin}/lora-adapters`, {
    method: "POST",
    body: JSON.stringify(scales.map((scale, id) => ({ id, scale }))),
  });
  expect(response.status).toBe(200);
}

describe("eval against a real llama-server", () => {
  it("--lora-id switches between two adapters on one server: every prediction is llama.cpp's", async () => {
    for (const [id, task] of TASKS.entries()) {
      const run = await serverEval(task, "--lora-id", String(id));
      expect(run.code, run.stderr).toBe(0);
      const got = await predictions(run.out);
      expect(got).toHaveLength(Number(LIMIT));
      expect(got).toEqual(await llamaPredictions(task, task));
      // The default --truncate left ran on the server's own context, and the end text was llama.cpp's.
      expect(await metrics(run.out)).toMatchObject({ truncate: "left", endText: "<|end_story|>" });
    }
    // The two adapters answer differently, so the equalities above say which one was applied.
    expect(await llamaPredictions(TASKS[0] as string, TASKS[0] as string)).not.toEqual(
      await llamaPredictions(TASKS[0] as string, TASKS[1] as string),
    );
  }, 300_000);

  it("--truncate left fits prompts longer than the context as llama.cpp does; --truncate none is refused in one line", async () => {
    const fitted = await serverEval(LONG, "--lora-id", "0");
    expect(fitted.code, fitted.stderr).toBe(0);
    expect(await metrics(fitted.out)).toMatchObject({ truncate: "left", promptsCut: Number(LIMIT) });
    expect(await predictions(fitted.out)).toEqual(await llamaPredictions(LONG, TASKS[0] as string));

    const whole = await serverEval(LONG, "--lora-id", "0", "--truncate", "none");
    expect(whole.code).toBe(1);
    expect(whole.stderr.trim().split("\n").at(-1)).toMatch(
      /^loramix: http:\/\/127\.0\.0\.1:\d+\/v1\/completions: HTTP 400 Bad Request: request \(\d+ tokens\) exceeds the available context size \(512 tokens\), try increasing it$/,
    );
    expect(existsSync(join(whole.out, "predictions.jsonl"))).toBe(false);

    const larger = await serverEval(LONG, "--lora-id", "0", "--context-size", "1024");
    expect(larger.code).toBe(2);
    expect(larger.stderr.trim()).toBe(
      `loramix: openai:base@${server.origin}/v1: a context of 1024 tokens is more than the server's 512`,
    );
  }, 300_000);

  it("without --lora-id, an adapter switched by POST /lora-adapters is not served from the previous prompt cache", async () => {
    const task = TASKS[0] as string;
    const adapter = await llamaPredictions(task, task);
    const plain = await llamaPredictions(task, null);
    try {
      for (const [scale, want] of [
        [1, adapter],
        [0, plain],
        [1, adapter],
      ] as const) {
        await setGlobalScales([scale, 0]);
        const run = await serverEval(task);
        expect(run.code, run.stderr).toBe(0);
        expect(await predictions(run.out)).toEqual(want);
      }
      // What loramix's cache_prompt: false prevents: the slots still hold the prompts as the
      // adapter saw them, and with the cache the same requests after the switch answer from it.
      await setGlobalScales([0, 0]);
      const stale = await serverEval(task, "--extra-body", '{"cache_prompt":true}');
      expect(stale.code, stale.stderr).toBe(0);
      expect(await predictions(stale.out)).not.toEqual(plain);
    } finally {
      await setGlobalScales([0, 0]);
    }
  }, 300_000);

  // This release parses `echo` nowhere (server-common.cpp's oaicompat_completion_params_parse, which
  // refuses it, is not called): it answers with a completion and no prompt log-probabilities.
  it("generate --score-url says in one line that llama-server cannot score candidates", async () => {
    const bank = join(work, "bank");
    // A copy: generate caches distances in the bank.
    await cp(join(REPO, "testbed"), bank, { recursive: true });
    const out = join(work, "scored");
    const run = await loramix([
      "generate",
      bank,
      "--data",
      data(TASKS[0] as string),
      "--score-url",
      `${server.origin}/v1`,
      "--score-model",
      "base",
      "--out",
      out,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n").at(-1)).toMatch(
      /^loramix: openai:base@http:\/\/127\.0\.0\.1:\d+\/v1: the server returned no log-probability per prompt token \(expected \d+\); it cannot score candidates, score with llama\.cpp instead$/,
    );
    expect(existsSync(out)).toBe(false);
  }, 300_000);
});

describe("the README's server commands", () => {
  it("run as written: llama-server's predictions equal the llama backend's for the same adapter", async () => {
    const section = readmeSection("Evaluate and score on your own server");
    const dir = join(work, "readme");
    await cp(join(REPO, "testbed/adapters", TASKS[0] as string), join(dir, "my-adapter"), {
      recursive: true,
    });
    await cp(base, join(dir, "base-model.gguf"));
    const task = JSON.parse(await readFile(data(TASKS[0] as string), "utf8")) as {
      Instances: { input: string; output: string[] }[];
    };
    await writeFile(
      join(dir, "my-task.jsonl"),
      task.Instances.slice(0, 120)
        .map((r) => JSON.stringify({ input: r.input, output: r.output[0] }))
        .join("\n"),
    );
    const port = await freePort();
    const asHere = (args: string[]) =>
      args.map((a) =>
        a === "tokenizer.json" ? TOKENIZER : a.replace("127.0.0.1:8080", `127.0.0.1:${port}`),
      );

    const commands = shellCommands(section);
    const convert = commands.find((c) => c[0] === "convert" && c[1] === "peft-to-gguf");
    expect(convert, "the section converts the adapter for llama-server").toBeDefined();
    const converted = await loramix(asHere(convert as string[]), dir);
    expect(converted.code, converted.stderr).toBe(0);

    const serve = shellLines(section).find((w) => w[0] === "llama-server") as string[];
    expect(serve).toContain("8080");
    const readmeServer = await startLlamaServer(
      bin,
      serve.slice(1).map((a) => (a === "8080" ? String(port) : a.endsWith(".gguf") ? join(dir, a) : a)),
      port,
    );
    running.push(readmeServer);

    const onServer = commands.find((c) => c[0] === "eval" && c.includes("--lora-id")) as string[];
    const served = await loramix([...asHere(onServer), "--json"], dir);
    expect(served.code, served.stderr).toBe(0);
    const got = await predictions(join(dir, "eval-out"));
    expect(got).toHaveLength(9);

    // Step 3 of the walkthrough, the same adapter on the CPU, with the server's thread count
    // (llama-server's default is the physical cores, loramix's every core; the README says to match).
    const threads = /llama threadpool init, n_threads = (\d+)/.exec(readmeServer.output())?.[1];
    expect(threads, readmeServer.output()).toBeDefined();
    const local = shellCommands().find((c) => c[0] === "eval" && c.includes("--adapter")) as string[];
    const onCpu = await loramix([...asHere(local), "--threads", threads as string], dir);
    expect(onCpu.code, onCpu.stderr).toBe(0);
    expect(got).toEqual(await predictions(join(dir, "eval-out")));
    await readmeServer.close();
  }, 300_000);
});
