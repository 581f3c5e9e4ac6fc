import { defineCommand } from "citty";

/** The command tree, apart from main.ts (which runs it) so that tests can walk it without running it. */
export const main = defineCommand({
  meta: {
    name: "loramix",
    version: "0.1.0",
    description: "Mix a bank of LoRA adapters into an adapter for a new dataset, on a CPU.",
  },
  args: {
    verbose: { type: "boolean", description: "Print stack traces on errors" },
    quiet: { type: "boolean", description: "No progress and no messages: only results and errors" },
  },
  // Each command loads on first use, so the CLI starts fast; spelled out so Vitest and bundlers see every import.
  subCommands: {
    profile: () => import("./commands/profile.js").then((m) => m.default),
    bank: () => import("./commands/bank.js").then((m) => m.default),
    distances: () => import("./commands/distances.js").then((m) => m.default),
    "train-mlp": () => import("./commands/trainMlp.js").then((m) => m.default),
    generate: () => import("./commands/generate.js").then((m) => m.default),
    loo: () => import("./commands/loo.js").then((m) => m.default),
    "synth-bank": () => import("./commands/synthBank.js").then((m) => m.default),
    "synth-model": () => import("./commands/synthModel.js").then((m) => m.default),
    convert: () => import("./commands/convert.js").then((m) => m.default),
    eval: () => import("./commands/eval.js").then((m) => m.default),
    train: () => import("./commands/train.js").then((m) => m.default),
    testbed: () => import("./commands/testbed.js").then((m) => m.default),
    demo: () => import("./commands/demo.js").then((m) => m.default),
  },
});
