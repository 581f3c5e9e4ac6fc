import { resolve } from "node:path";
import { defineCommand } from "citty";
import { checkAnswers, tallyAnswers } from "../../datasets/emptyAnswers.js";
import { loadDataset } from "../../datasets/load.js";
import { usageError } from "../../errors.js";
import { TRAIN_RECORD } from "../../formats/fileNames.js";
import { DEFAULT_RULE, TRUNCATION_RULE } from "../../train/examples.js";
import { TRAIN_DEFAULTS, trainLora } from "../../train/trainLora.js";
import { createProgress, info, interrupt } from "../context.js";
import { integerAtLeast } from "../options.js";

export default defineCommand({
  meta: {
    name: "train",
    description:
      "Train a LoRA (r 8, alpha 16, q/k/v) of a small Hugging Face Llama on a dataset's train split, on the CPU " +
      `(tfjs wasm), and write a PEFT adapter. Loss on output tokens only; ${TRUNCATION_RULE}.`,
  },
  args: {
    model: {
      type: "string",
      description: "Hugging Face Llama directory (with tokenizer.json)",
      required: true,
    },
    data: {
      type: "string",
      description: "Dataset file or directory (its train split is used)",
      required: true,
    },
    out: { type: "string", description: "Adapter directory to write", required: true },
    steps: { type: "string", description: "Optimizer steps", default: String(TRAIN_DEFAULTS.steps) },
    batch: { type: "string", description: "Examples per step", default: String(TRAIN_DEFAULTS.batchSize) },
    lr: {
      type: "string",
      description: "Peak AdamW learning rate (linear decay to 0)",
      default: String(TRAIN_DEFAULTS.lr),
    },
    seed: {
      type: "string",
      description: "Seed of the example order (and of A unless --init-seed)",
      default: "0",
    },
    "init-seed": { type: "string", description: "Seed of the shared initialisation of A (default: --seed)" },
    context: {
      type: "string",
      description: "Tokens per training sequence (at most the model's context)",
      default: String(DEFAULT_RULE.context),
    },
    "answer-tokens": {
      type: "string",
      description: "Output tokens kept per sequence, end token included",
      default: String(DEFAULT_RULE.answerTokens),
    },
  },
  async run({ args }) {
    const shuffleSeed = integerAtLeast("seed", args.seed, 0) ?? 0;
    const seed = integerAtLeast("init-seed", args["init-seed"], 0) ?? shuffleSeed;
    const lr = Number(args.lr);
    if (!(Number.isFinite(lr) && lr > 0))
      throw usageError(`--lr must be a positive number, got "${args.lr}"`);
    const dataset = await loadDataset(resolve(args.data));
    const records = dataset.splits.train;
    info(`${dataset.path}: ${records.length} train records`);
    const warning = checkAnswers(dataset.path, tallyAnswers(records));
    if (warning !== null) info(`warning: ${warning}`);
    const progress = createProgress();
    try {
      const result = await trainLora({
        model: resolve(args.model),
        records,
        out: resolve(args.out),
        steps: integerAtLeast("steps", args.steps, 1),
        batchSize: integerAtLeast("batch", args.batch, 1),
        lr,
        seed,
        shuffleSeed,
        rule: {
          context: integerAtLeast("context", args.context, 2) ?? DEFAULT_RULE.context,
          answerTokens:
            integerAtLeast("answer-tokens", args["answer-tokens"], 1) ?? DEFAULT_RULE.answerTokens,
        },
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      info(
        `${result.out}: ${result.steps} steps (${result.epochs} epochs of ${result.examples} examples), ` +
          `loss ${result.firstLoss.toFixed(4)} → ${result.finalLoss.toFixed(4)}, ` +
          `${result.seconds.toFixed(1)} s, ${Math.round(result.tokensPerSecond)} tokens/s; stats in ${TRAIN_RECORD}`,
      );
    } finally {
      progress.stop();
    }
  },
});
