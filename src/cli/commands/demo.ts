import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { runMethodDemo } from "../../demo/methodDemo.js";
import { DEMO_LIMIT, type DemoResult, runDemo } from "../../demo/run.js";
import { gapClosed, variantSummary } from "../../demo/tables.js";
import { METRICS, type Metric } from "../../distances/metric.js";
import { DEFAULT_NEAREST } from "../../select/candidates.js";
import { DEFAULT_SCORE_EXAMPLES } from "../../select/examples.js";
import { DEFAULT_TESTBED, sharedDir } from "../../testbed/paths.js";
import { DEFAULT_FINETUNE_STEPS } from "../../train/finetuneLora.js";
import type { ProgressSink } from "../../util/progress.js";
import { WEIGHT_METHODS, type WeightMethod } from "../../weights/methods.js";
import { createProgress, info, interrupt, printJson, printResult } from "../context.js";
import { integerAtLeast, JSON_OPTION, listOf, positiveInt, SIDE_ARG, sideOption } from "../options.js";

export default defineCommand({
  meta: {
    name: "demo",
    description:
      "Generated vs trained adapters on the built-in testbed (TinyStories-656K + Super-NI tasks): the paper's Tables 1 and 3",
  },
  args: {
    ...JSON_OPTION,
    out: {
      type: "string",
      default: "./loramix-demo",
      description: "Output directory for report.html (replaced)",
    },
    all: {
      type: "boolean",
      description: "Leave-one-out over every task of the bank, not only the held-out ones",
    },
    tasks: { type: "string", description: "Comma-separated target tasks (instead of the held-out set)" },
    limit: { type: "string", default: String(DEMO_LIMIT), description: "Test records per task" },
    "max-new-tokens": { type: "string", default: "16", description: "Generation cap per record" },
    metric: { type: "string", description: 'Distances: "all" (default) or e.g. js,kl' },
    method: { type: "string", description: 'Weightings: "all" (default) or e.g. normalized,neural' },
    side: {
      ...SIDE_ARG,
      description: `${SIDE_ARG.description}; for the paper's configurations and the nearest adapter`,
    },
    candidates: {
      type: "string",
      default: String(DEFAULT_NEAREST),
      description: "--select fit/loss: nearest single adapters among the candidates",
    },
    "score-examples": {
      type: "string",
      default: String(DEFAULT_SCORE_EXAMPLES),
      description: "--select fit/loss: train records each candidate is scored on",
    },
    fit: {
      type: "boolean",
      default: true,
      description: "Evaluate --select fit (--no-fit: --select loss only, and no fine-tuning)",
    },
    finetune: {
      type: "string",
      default: String(DEFAULT_FINETUNE_STEPS),
      description:
        "Training steps that fine-tune the --select fit mix, generate's default, shown beside the same steps without the bank (0: neither)",
    },
    testbed: { type: "string", description: "Testbed directory (default: the shipped one)" },
    threads: { type: "string", default: "1", description: "llama.cpp threads" },
    synthetic: {
      type: "boolean",
      description:
        "Instead: the method alone on real Super-NI datasets with synthetic adapters (no model, ~15 s)",
    },
  },
  async run({ args }) {
    const progress = createProgress();
    const testbed = args.testbed ? resolve(args.testbed) : DEFAULT_TESTBED;
    if (args.synthetic === true) {
      try {
        await methodDemo(resolve(args.out), progress);
      } finally {
        progress.stop();
      }
      return;
    }
    try {
      const result = await runDemo({
        out: resolve(args.out),
        all: args.all === true,
        targets: args.tasks
          ?.split(",")
          .map((s) => s.trim())
          .filter((s) => s !== ""),
        limit: positiveInt("limit", args.limit),
        maxNewTokens: positiveInt("max-new-tokens", args["max-new-tokens"]),
        metrics: args.metric === undefined ? undefined : listOf<Metric>("metric", args.metric, METRICS),
        methods:
          args.method === undefined ? undefined : listOf<WeightMethod>("method", args.method, WEIGHT_METHODS),
        side: sideOption(args.side),
        fit: args.fit !== false,
        finetune: integerAtLeast("finetune", args.finetune, 0),
        candidates: positiveInt("candidates", args.candidates),
        scoreExamples: positiveInt("score-examples", args["score-examples"]),
        testbed,
        threads: positiveInt("threads", args.threads),
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      for (const n of result.notes) info(n);
      const files = {
        tables: join(result.out, "tables.txt"),
        results: join(result.out, "results.json"),
        report: join(result.out, "report.html"),
      };
      if (args.json) {
        printJson({
          out: result.out,
          files,
          seconds: result.seconds,
          targets: result.targets,
          scores: demoScores(result),
        });
        return;
      }
      printResult(result.tables);
      printResult("");
      printResult(`These tables: ${files.tables}`);
      printResult(`Every score, weight and prediction: ${files.results}`);
      printResult(`Heatmaps and per-task intervals: ${files.report} (open it in a browser)`);
      printResult(
        "Next, on your own data: npx loramix generate BANK --data YOUR.jsonl --model BASE_MODEL_DIR --out my-adapter (see the README's step-by-step section)",
      );
    } finally {
      progress.stop();
    }
  },
});

/** The method without a model: which entries a new dataset draws on, and leave-one-out recovery. */
async function methodDemo(out: string, progress: ProgressSink & { stop(): void }): Promise<void> {
  info("The method alone: real Super-NI datasets, SYNTHETIC adapters (tasks of one Super-NI category share");
  info("a component). It shows which bank entries a new dataset draws on and how well each weighting");
  info(
    "recovers held-out adapters; it says nothing about generation quality (run `loramix demo` for that).\n",
  );
  const started = performance.now();
  const result = await runMethodDemo({
    sni: join(sharedDir(), "data/sni"),
    out,
    signal: interrupt.signal,
    progress,
  });
  progress.stop();
  printResult(
    `Bank: ${result.bankEntries} Super-NI tasks with synthetic adapters. New datasets (not in the bank):`,
  );
  for (const t of result.targets) {
    printResult(
      `\n${t.task} [${t.categories.join(", ")}]: adapter written in ${t.seconds.toFixed(1)} s; largest weights (normalized JS):`,
    );
    for (const w of t.top) {
      printResult(
        `  ${w.weight.toFixed(3)}  d=${w.distance.toFixed(4)}  ${w.id} [${w.categories.join(", ")}]`,
      );
    }
  }
  printResult(
    "\nLeave-one-out over the bank (cosine / relative L2 of the mixed adapter vs the held-out one):\n",
  );
  printResult(result.loo.summary);
  printResult(
    `Adapters: ${join(out, "adapters")}; leave-one-out report: ${join(out, "loo", "summary.html")}`,
  );
  printResult(`Done in ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

/** Every evaluated row's mean ± std over tasks and its share of the base → trained gap. */
function demoScores(result: DemoResult): Record<string, unknown> {
  return Object.fromEntries(
    [...result.grid.keys()].map((v) => [
      v,
      {
        rougeL: variantSummary(result.grid, v, "rougeL"),
        exactMatch: variantSummary(result.grid, v, "exactMatch"),
        gapRougeL: gapClosed(result.grid, v, "rougeL") ?? null,
        gapExactMatch: gapClosed(result.grid, v, "exactMatch") ?? null,
      },
    ]),
  );
}
