import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { usageError } from "../../errors.js";
import { buildTestbed, DEFAULT_SEED, DEFAULT_STEPS, type TaskTrainer } from "../../testbed/build.js";
import { createProgress, info, interrupt } from "../context.js";
import { positiveInt } from "../options.js";

const TESTBED_BATCH = 8;

/** The LoRA trainer on worker threads, loaded on demand: tfjs is not needed by the rest of the CLI. */
async function loadTrainer(jobs: number): Promise<{ trainer: TaskTrainer; close(): Promise<void> }> {
  const { TrainPool } = await import("../../train/trainPool.js");
  const pool = new TrainPool(jobs);
  return {
    trainer: (options) => pool.train({ ...options, batchSize: TESTBED_BATCH }),
    close: () => pool.close(),
  };
}

const build = defineCommand({
  meta: {
    name: "build",
    description:
      "Train one LoRA per testbed task (shared seeded init of A), file them in a bank and record reference scores; resumable",
  },
  args: {
    out: { type: "string", default: "testbed", description: "Testbed directory" },
    steps: { type: "string", default: String(DEFAULT_STEPS), description: "Training steps per adapter" },
    seed: {
      type: "string",
      default: String(DEFAULT_SEED),
      description: "Seed of the shared initialisation of A",
    },
    tasks: { type: "string", description: "Comma-separated subset of the selected tasks" },
    limit: { type: "string", default: "50", description: "Test records per task for the reference scores" },
    threads: { type: "string", default: "1", description: "llama.cpp and tokenizer threads" },
    jobs: {
      type: "string",
      default: String(availableParallelism()),
      description: "Adapters trained side by side, one thread each",
    },
  },
  async run({ args }) {
    const seed = Number(args.seed);
    if (!Number.isInteger(seed)) throw usageError(`--seed must be an integer, got "${args.seed}"`);
    const jobs = positiveInt("jobs", args.jobs) ?? 1;
    const { trainer, close } = await loadTrainer(jobs);
    const progress = createProgress();
    try {
      const result = await buildTestbed({
        out: resolve(args.out),
        steps: positiveInt("steps", args.steps),
        seed,
        tasks: args.tasks
          ?.split(",")
          .map((s) => s.trim())
          .filter((s) => s !== ""),
        eval: { limit: positiveInt("limit", args.limit) ?? 50 },
        trainer,
        trainerSettings: { batchSize: TESTBED_BATCH },
        threads: positiveInt("threads", args.threads),
        jobs,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const s = result.seconds;
      info(
        `${result.dir}: ${result.tasks.length} tasks, ${result.trained.length} adapters trained, ${result.evaluated.length} tasks evaluated`,
      );
      info(
        `time: train ${s.train.toFixed(0)} s, bank ${s.bank.toFixed(0)} s, references ${s.references.toFixed(0)} s, total ${s.total.toFixed(0)} s`,
      );
    } finally {
      progress.stop();
      await close();
    }
  },
});

export default defineCommand({
  meta: { name: "testbed", description: "The built-in testbed (TinyStories-656K + Super-NI task families)" },
  subCommands: { build },
});
