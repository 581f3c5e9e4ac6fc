import type { Metric } from "../distances/metric.js";
import { throwIfAborted } from "../errors.js";
import { readModelInfo } from "../formats/modelInfo.js";
import type { ProfileSide } from "../profiles/profile.js";
import { DEFAULT_NEAREST, MIXTURE_TEMPERATURES } from "../select/candidates.js";
import { DEFAULT_SCORE_EXAMPLES } from "../select/examples.js";
import { defaultBudget } from "../select/schedule.js";
import { openTestbedBackend } from "../testbed/backend.js";
import { DEFAULT_TESTBED } from "../testbed/paths.js";
import { DEFAULT_EVAL, type EvalSettings } from "../testbed/references.js";
import { checkFinetuneSteps, DEFAULT_FINETUNE_STEPS } from "../train/finetuneLora.js";
import { checkOutDir } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import { WEIGHT_METHODS, type WeightMethod } from "../weights/methods.js";
import { evaluateTargets, type TargetRow } from "./evaluate.js";
import { finetunePerTarget } from "./finetune.js";
import { type DemoMeasurements, demoTables, writeDemoReport } from "./report.js";
import { selectPerTarget } from "./select.js";
import { openDemoSetup } from "./setup.js";
import {
  BASELINES,
  type FamilyShares,
  LORAMIX_ROWS,
  type ScoreGrid,
  TABLE_METRICS,
  type TableLayout,
} from "./tables.js";
import { familyShares, paperWeights } from "./weights.js";

export type { TargetRow, VariantScore } from "./evaluate.js";

/**
 * Test records per task by default (the testbed issue: per-task numbers that mean something).
 * 11 tasks × 21 variants × 50 records plus selection, fitting and fine-tuning took 515 s on 2 cores
 * (2026-12-06).
 */
export const DEMO_LIMIT = 50;

export interface DemoOptions {
  /** Testbed directory (default: the shipped one). */
  testbed?: string;
  shared?: string;
  /** Output directory, replaced atomically: report.html, results.json, tables.txt, heatmaps. */
  out: string;
  /** Leave-one-out over every task of the bank instead of the held-out ones. */
  all?: boolean;
  /** Explicit target tasks (overrides the held-out set and `all`). */
  targets?: string[];
  /** Test records per task. */
  limit?: number;
  maxNewTokens?: number;
  metrics?: Metric[];
  methods?: WeightMethod[];
  /** Side of the profiles behind the paper's configurations and the nearest adapter (default "both", SPEC §2). */
  side?: ProfileSide;
  /** --select loss: nearest single adapters among the candidates, and train records scored. */
  candidates?: number;
  scoreExamples?: number;
  /** Tokens each target's selection and fit may evaluate (default: generate's for the testbed's model); null: no limit. */
  budget?: number | null;
  /** Also evaluate --select fit (default true). */
  fit?: boolean;
  /**
   * Training steps that fine-tune the --select fit mix per target (generate's default), evaluated
   * beside the same steps from the seeded initialisation; 0 (or no fit) leaves both rows out.
   */
  finetune?: number;
  /** Hidden width of the neural weighting's MLP (paper: 4000; the testbed's 60 entries need far less). */
  mlpHidden?: number;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface DemoResult {
  out: string;
  targets: string[];
  candidates: string[];
  layout: TableLayout;
  grid: ScoreGrid;
  /** Per mixed variant and target: the weight on the target's family (siblings sharing its answers). */
  familyShares: FamilyShares;
  rows: TargetRow[];
  tables: string;
  notes: string[];
  eval: EvalSettings;
  seconds: number;
}

/**
 * The paper's experiment on the shipped testbed (SPEC §6 leave-one-out): for each target task the
 * bank's other adapters are weighted by every configuration (method × metric), mixed (linear),
 * and evaluated on the task's test split with llama.cpp, beside the base model, the majority
 * answer, the nearest single adapter, the uniform average, the task's own trained adapter and
 * loramix's own choices. Steps: setup → weights → selection → evaluation → report.
 */
export async function runDemo({
  testbed = DEFAULT_TESTBED,
  shared,
  out,
  all = false,
  targets,
  limit = DEMO_LIMIT,
  maxNewTokens = DEFAULT_EVAL.maxNewTokens,
  metrics = [...TABLE_METRICS],
  methods = [...WEIGHT_METHODS],
  side = "both",
  candidates: nearest = DEFAULT_NEAREST,
  scoreExamples: examples = DEFAULT_SCORE_EXAMPLES,
  budget,
  fit = true,
  finetune = DEFAULT_FINETUNE_STEPS,
  mlpHidden = 64,
  threads = 1,
  signal,
  progress,
}: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  checkFinetuneSteps(finetune);
  await checkOutDir(out, "demo");
  const setup = await openDemoSetup({ testbed, shared, targets, all, limit, maxNewTokens });
  const { settings } = setup;
  const tmp = await scratchDir("demo");
  let closeBackend: (() => Promise<void>) | undefined;
  try {
    const paper = await paperWeights(setup, { metrics, methods, side, mlpHidden, signal, progress });
    const rule = {
      given: "given",
      all: "all, leave-one-out",
      "held-out": "the held-out task of each family",
    };
    const notes: string[] = [
      `testbed ${setup.paths.dir}: ${setup.ids.length} trained adapters (TinyStories-656K, LoRA on q/k/v), ${setup.targets.length} target tasks (${rule[setup.targetRule]}); each target's own adapter is masked`,
      `evaluation: first ${settings.limit} test records per task, greedy, at most ${settings.maxNewTokens} new tokens, prompts cut from the left to fit the model's ${settings.context}-token context`,
      "tables: mean ± population std over the target tasks of each task's mean score; merge: linear (SPEC §5)",
      `profiles: ${side === "both" ? "input + output (SPEC §2)" : `${side} side`} for the paper's configurations and the nearest adapter; output side for loramix's rows`,
      `--select loss: ${nearest} nearest adapters by output-side JS + normalized mixtures at τ = ${MIXTURE_TEMPERATURES.join(", ")}, scored on ${examples} train records of the target (the testbed's training rule: ${settings.context}-token context, ${settings.maxNewTokens} answer tokens); the lowest loss is evaluated`,
      ...paper.notes,
    ];

    const opened = await openTestbedBackend(setup.paths, { context: settings.context, threads });
    closeBackend = opened.close;
    const { selections, notes: selectNotes } = await selectPerTarget(setup, opened.backend, paper, {
      nearest,
      examples,
      budget: budget === undefined ? defaultBudget((await readModelInfo(setup.paths.model)).dims) : budget,
      fit,
      signal,
      progress,
    });
    notes.push(...selectNotes);
    const trained =
      fit && finetune > 0
        ? await finetunePerTarget(setup, paper.weightRows, { steps: finetune, tmp, signal, progress })
        : undefined;
    if (trained) notes.push(...trained.notes);

    const mixed = [
      ...paper.configs,
      ...LORAMIX_ROWS.filter((r) => r !== "finetuned" && (fit || r !== "select-fit")),
      "nearest",
      "uniform",
    ];
    const grid: ScoreGrid = new Map(
      [...BASELINES, ...LORAMIX_ROWS, ...paper.configs].map((v) => [v, new Map()]),
    );
    const rows = await evaluateTargets(setup, opened.backend, paper.weightRows, {
      mixed,
      ...(trained ? { trained: trained.adapters } : {}),
      grid,
      tmp,
      signal,
      progress,
    });

    const measured: DemoMeasurements = {
      layout: { metrics, methods },
      configs: paper.configs,
      grid,
      familyShares: familyShares(setup, paper.weightRows, mixed),
      weightRows: paper.weightRows,
      selections,
      rows,
      notes,
    };
    const tables = demoTables(setup, measured);
    const seconds = (performance.now() - started) / 1000;
    notes.push(`run time ${seconds.toFixed(0)} s`);
    throwIfAborted(signal);
    await writeDemoReport(out, setup, measured, tables);
    return {
      out,
      targets: setup.targets,
      candidates: setup.ids,
      layout: measured.layout,
      grid,
      familyShares: measured.familyShares,
      rows,
      tables,
      notes,
      eval: settings,
      seconds,
    };
  } finally {
    await closeBackend?.();
    setup.bank.close();
    await removeScratch(tmp);
  }
}
