import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bank } from "../src/bank/store.js";
import { buildTestbed, type TaskReference, type TaskTrainer } from "../src/testbed/build.js";
import type { TaskSelection } from "../src/testbed/tasks.js";
import { trainLora } from "../src/train/trainLora.js";
import { REPO, tempDir } from "./helpers/shared.js";

/**
 * `testbed build` on two tasks of the shipped selection with a few training steps: what an
 * interrupted build leaves, and that a rerun does only what is missing or stale.
 */
describe("loramix testbed build (2 tasks, 3 steps)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tasks: string[];
  let family: string;
  const trainedNow: string[] = [];
  const trainer: TaskTrainer = async (options) => {
    await trainLora({ ...options, rule: { context: 64, answerTokens: 16 }, batchSize: 2 });
    trainedNow.push(options.out);
  };
  const build = (evalLimit: number, signal?: AbortSignal) => {
    trainedNow.length = 0;
    return buildTestbed({
      out: dir,
      tasks,
      steps: 3,
      seed: 11,
      eval: { limit: evalLimit, maxNewTokens: 4 },
      trainer,
      signal,
    });
  };
  const adapterBytes = (task: string) => readFile(join(dir, "adapters", task, "adapter_model.safetensors"));
  const references = async () =>
    JSON.parse(await readFile(join(dir, "references.json"), "utf8")) as Record<string, TaskReference>;

  beforeAll(async () => {
    const selection = JSON.parse(
      await readFile(join(REPO, "testbed/selection.json"), "utf8"),
    ) as TaskSelection;
    const first = selection.families[0] as TaskSelection["families"][number];
    family = first.key;
    tasks = first.tasks.slice(0, 2);
    ({ dir, cleanup } = await tempDir("loramix-testbed-"));
  });
  afterAll(() => cleanup?.());

  it("stopped after the first adapter: that adapter whole and logged, nothing of the second, no bank", async () => {
    const controller = new AbortController();
    const stopAfterFirst: TaskTrainer = async (options) => {
      await trainer(options);
      controller.abort();
    };
    await expect(
      buildTestbed({
        out: dir,
        tasks,
        steps: 3,
        seed: 11,
        trainer: stopAfterFirst,
        signal: controller.signal,
      }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    const [t1, t2] = tasks as [string, string];
    expect(existsSync(join(dir, "adapters", t1, "adapter_model.safetensors"))).toBe(true);
    expect(existsSync(join(dir, "adapters", t2))).toBe(false);
    const log = JSON.parse(await readFile(join(dir, "build.json"), "utf8"));
    expect(Object.keys(log.trainSeconds)).toEqual([t1]);
    expect(log.seed).toBe(11);
    expect(existsSync(join(dir, "bank.sqlite"))).toBe(false);
    expect(existsSync(join(dir, "references.json"))).toBe(false);
  }, 120_000);

  it("a rerun trains only the missing adapter, then files both tasks with their family and references", async () => {
    const result = await build(3);
    expect(result.trained).toEqual([tasks[1]]);
    expect(trainedNow).toEqual([join(dir, "adapters", tasks[1] as string)]);
    expect(result.evaluated).toEqual(tasks);

    const bank = await Bank.open(dir);
    try {
      expect(bank.entries().map((e) => e.id)).toEqual(tasks);
      for (const t of tasks) expect(bank.entry(t)?.metadata.family).toBe(family);
      const refs = await references();
      expect(Object.keys(refs)).toEqual(tasks);
      for (const t of tasks) {
        const r = refs[t] as TaskReference;
        expect(r.family).toBe(family);
        expect(r.testRecords).toBe(3);
        expect(r.adapterHash).toBe(bank.entry(t)?.adapterHash);
        for (const s of [r.base.rougeL, r.trained.rougeL, r.majority.exactMatch]) {
          expect(s.mean).toBeGreaterThanOrEqual(0);
          expect(s.mean).toBeLessThanOrEqual(1);
        }
      }
    } finally {
      bank.close();
    }
    const log = JSON.parse(await readFile(join(dir, "build.json"), "utf8"));
    expect(log.lastRun).toMatchObject({ trained: 1, evaluated: 2, jobs: 1 });
  }, 240_000);

  it("a rerun with nothing missing trains and scores nothing; changed eval settings re-score only", async () => {
    const before = await adapterBytes(tasks[0] as string);
    const unchanged = await build(3);
    expect(unchanged.trained).toEqual([]);
    expect(unchanged.evaluated).toEqual([]);
    expect((await adapterBytes(tasks[0] as string)).equals(before)).toBe(true);

    const rescored = await build(2);
    expect(rescored.trained).toEqual([]);
    expect(rescored.evaluated).toEqual(tasks);
    for (const r of Object.values(await references())) expect(r.testRecords).toBe(2);
  }, 240_000);

  it("a lost adapter is retrained from the shared seed to the same weights; only its references are redone", async () => {
    const task = tasks[1] as string;
    const before = await adapterBytes(task);
    await rm(join(dir, "adapters", task), { recursive: true });
    const result = await build(2);
    expect(result.trained).toEqual([task]);
    expect((await adapterBytes(task)).equals(before)).toBe(true);
    // The adapter's hash covers its training log (wall seconds), so the rerun counts as a new adapter.
    expect(result.evaluated).toEqual([task]);
  }, 240_000);
});
