import { resolve } from "node:path";
import type { DatasetOptions } from "../datasets/load.js";
import { METRICS, type Metric, type MmdMode } from "../distances/metric.js";
import { option, usageError } from "../errors.js";
import { type ModelInfo, readModelInfo } from "../formats/modelInfo.js";
import { MIX_MODES, type MixMode } from "../merge/mixAdapters.js";
import { PROFILE_SIDES, type ProfileSide } from "../profiles/profile.js";
import { DEFAULT_NEAREST } from "../select/candidates.js";
import { DEFAULT_SCORE_EXAMPLES } from "../select/examples.js";
import type { FitOptions } from "../select/fitWeights.js";
import type { ScoreServer } from "../select/openScorer.js";
import { checkBudget, defaultBudget } from "../select/schedule.js";
import type { SelectionEstimate } from "../select/selectByLoss.js";
import { promptBudget } from "../tokenizers/fitPrompt.js";
import { checkRuleFits, DEFAULT_RULE, type SequenceRule } from "../train/examples.js";
import { checkFinetuneSteps, DEFAULT_FINETUNE_STEPS, finetuneUnavailable } from "../train/finetuneLora.js";
import { TRAIN_DEFAULTS } from "../train/trainLora.js";
import { checkOutDir } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { neuralSideError, WEIGHT_METHODS, type WeightMethod } from "../weights/methods.js";
import { checkPruneOptions, type PruneOptions } from "../weights/prune.js";

/**
 * How `generate` chooses its weights: "fit" (the default without a method) scores candidates on
 * the dataset's train records, then refines the best ones' mix on the same loss; "loss" keeps the
 * lowest-loss candidate; "method" is the paper's weighting over the whole bank.
 */
export const SELECT_MODES = ["fit", "loss", "method"] as const;
export type SelectMode = (typeof SELECT_MODES)[number];

export interface GenerateOptions {
  /** The target: a dataset (file or directory) or a profile.json made by `loramix profile` with the bank's tokenizer. */
  data: string;
  dataOptions?: DatasetOptions;
  metric?: Metric;
  /** One of SELECT_MODES (default "fit", or "method" when `method` is given). */
  select?: SelectMode;
  /** Which side of the records the profiles count (default: "output" for select fit and loss, "both" for method, SPEC §2). */
  side?: ProfileSide;
  method?: WeightMethod;
  /** Base model llama.cpp scores candidates with: a GGUF or a Hugging Face directory. */
  model?: string;
  /** The model's tokenizer.json, for a GGUF `model` (default: the bank's, when it is a file). */
  tokenizer?: string;
  /**
   * Score on an OpenAI-compatible server instead of llama.cpp (vLLM with runtime LoRA loading):
   * its base URL and the base model's served name. Examples are tokenized with the bank's tokenizer.
   */
  scoreServer?: ScoreServer;
  /** Nearest single adapters among the scored candidates (select fit and loss). */
  nearest?: number;
  /** Train records a candidate may be scored on at most (select fit and loss). */
  scoreExamples?: number;
  /**
   * Tokens llama.cpp may evaluate to select and fit (select fit and loss; default `defaultBudget`
   * of the model: DEFAULT_BUDGET's compute on Mistral-7B), spent by successive halving; null:
   * every candidate on every record, then every fit trial.
   */
  budget?: number | null;
  /** Told once scoring has started how long it should take, from the speed of the first scoring. */
  onEstimate?: (estimate: SelectionEstimate) => void;
  /**
   * Training steps that fine-tune the chosen mix on the dataset's train records (select fit and loss;
   * `finetuneLora`), when `model` is a Hugging Face Llama directory small enough for the CPU
   * trainer. Default DEFAULT_FINETUNE_STEPS there, else the mix is kept as it is (and a note says
   * why); 0 turns fine-tuning off; a positive number where it cannot run is an error.
   */
  finetune?: number;
  /** Context and answer budget of the scored and fine-tuned sequences: `loramix train`'s rule (default 512, capped by the model, and 128). */
  context?: number;
  answerTokens?: number;
  merge?: MixMode;
  topK?: number;
  minWeight?: number;
  /** Softmin temperature τ of attentional and normalized (SPEC §4). */
  temperature?: number;
  mmd?: MmdMode;
  /** The trained MLP looked up for `neural` (as `loramix train-mlp` stored it). */
  mlpHidden?: number;
  mlpSeed?: number;
  /** Output adapter directory, replaced atomically. */
  out: string;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/** How candidates are scored: on llama.cpp with `model`, or on `server`. */
export interface ScoringPlan {
  model?: string;
  /** The model's header: its context and shapes, checked against the bank's adapters before scoring. */
  info?: ModelInfo;
  tokenizer?: string;
  server?: ScoreServer;
  /** llama.cpp threads (default: every core). */
  threads?: number;
  rule: SequenceRule;
  /** Train records a candidate may be scored on at most. */
  examples: number;
  /** Tokens selection and fit may evaluate; null: no limit. */
  budget: number | null;
  /** The refinement of select fit; absent for select loss. */
  fit?: FitOptions;
}

/** Every choice `generate` makes before it reads anything large: defaults applied, options checked. */
export interface GeneratePlan {
  data: string;
  dataOptions: DatasetOptions | undefined;
  select: SelectMode;
  side: ProfileSide;
  metric: Metric;
  mmd: MmdMode;
  method: WeightMethod;
  temperature: number;
  mlp: { hidden: number; seed: number };
  merge: MixMode;
  prune: PruneOptions | null;
  /** Nearest single adapters among the candidates (select fit and loss). */
  nearest: number;
  /** Null for select method, and without a model or server (the nearest adapter is then taken). */
  scoring: ScoringPlan | null;
  /** Fine-tuning steps after the mix; 0: none. */
  finetune: number;
  /** Whether the user asked for the fine-tuning (an impossible one is then an error, not a note). */
  finetuneAsked: boolean;
  /** Train records kept from the dataset's stream, for scoring and fine-tuning. */
  keep: number;
  out: string;
  threads: number | undefined;
  /** What the user should know about the plan (why there is no fine-tuning, say). */
  notes: string[];
}

/**
 * Resolves generate's options into a plan: every default, and every check that needs no bank,
 * made before any work: unknown names, contradictory options, the output folder, and the
 * sequence rule against the base model's trained context (read from its header, not loaded).
 */
export async function resolvePlan(options: GenerateOptions): Promise<GeneratePlan> {
  const {
    metric = "js",
    select = options.method === undefined ? "fit" : "method",
    side = select === "method" ? "both" : "output",
    method = "normalized",
    merge = "linear",
    temperature = 1,
    mmd = "exact",
    finetune: finetuneAsked,
  } = options;
  if (!METRICS.includes(metric)) throw usageError(`unknown metric "${metric}" (use ${METRICS.join(", ")})`);
  if (!WEIGHT_METHODS.includes(method))
    throw usageError(`unknown method "${method}" (use ${WEIGHT_METHODS.join(", ")})`);
  if (!PROFILE_SIDES.includes(side))
    throw usageError(`unknown side "${side}" (use ${PROFILE_SIDES.join(", ")})`);
  if (!SELECT_MODES.includes(select))
    throw usageError(`unknown select "${select}" (use ${SELECT_MODES.join(", ")})`);
  if (select === "method" && side !== "both" && method === "neural") throw neuralSideError(side);
  if (select !== "method" && options.method !== undefined) {
    const [m, s] = [option("method"), option("select", "method")];
    throw usageError(`select ${select} picks its own candidates; drop ${m.text}, or use ${s.text}`, [m, s]);
  }
  if (!MIX_MODES.includes(merge)) throw usageError(`unknown merge "${merge}" (use ${MIX_MODES.join(", ")})`);
  if (method === "neural" && temperature !== 1) {
    const t = option("temperature");
    throw usageError(
      `${t.text} applies to attentional and normalized; the neural weighting learns its own scale`,
      [t],
    );
  }
  const prune =
    options.topK !== undefined || options.minWeight !== undefined
      ? { topK: options.topK, minWeight: options.minWeight }
      : null;
  if (prune) checkPruneOptions(prune);
  if (finetuneAsked !== undefined) checkFinetuneSteps(finetuneAsked);
  if (select === "method" && (finetuneAsked ?? 0) > 0) {
    const [r, s] = [option("finetune"), option("select", "fit")];
    throw usageError(
      `fine-tuning applies to select fit and loss; the paper's configurations stay as mixed: drop ${r.text}, or use ${s.text}`,
      [r, s],
    );
  }
  await checkOutDir(options.out, "adapter");
  const notes: string[] = [];
  const finetune = await finetunePlan(select, options.model, finetuneAsked, notes);
  const scoring = select === "method" ? null : await scoringPlan(options, select);
  if (scoring?.info?.synthetic)
    notes.push(
      `${scoring.info.path} is a synthetic model (loramix synth-model: random weights): its losses and this adapter measure time and memory, nothing else`,
    );
  return {
    data: options.data,
    dataOptions: options.dataOptions,
    select,
    side,
    metric,
    mmd,
    method,
    temperature,
    mlp: { hidden: options.mlpHidden ?? 64, seed: options.mlpSeed ?? 0 },
    merge,
    prune,
    nearest: options.nearest ?? DEFAULT_NEAREST,
    scoring,
    finetune,
    finetuneAsked: finetuneAsked !== undefined,
    // finetuneLora trains on the first steps × batch records (finetuneRecords), so that many are kept.
    keep: Math.max(options.scoreExamples ?? DEFAULT_SCORE_EXAMPLES, finetune * TRAIN_DEFAULTS.batchSize),
    out: options.out,
    threads: options.threads,
    notes,
  };
}

/**
 * The scoring of select fit and loss, or null without a model or server. The rule's context is
 * the user's or the default capped by the model's trained context; a context beyond what the model
 * was trained with is refused now, not after minutes of scoring.
 */
async function scoringPlan(options: GenerateOptions, select: "fit" | "loss"): Promise<ScoringPlan | null> {
  const { model, scoreServer: server, context } = options;
  if (model === undefined && server === undefined) return null;
  const info = server ? null : await readModelInfo(model as string);
  const trained = info?.context ?? null;
  const rule: SequenceRule = {
    context: context ?? Math.min(DEFAULT_RULE.context, trained ?? DEFAULT_RULE.context),
    answerTokens: options.answerTokens ?? DEFAULT_RULE.answerTokens,
  };
  if (trained !== null) checkRuleFits(rule, trained, resolve(model as string));
  promptBudget(rule.context, rule.answerTokens);
  const budget = options.budget === undefined ? defaultBudget(info?.dims ?? null) : options.budget;
  checkBudget(budget);
  return {
    ...(server ? { server } : { model, tokenizer: options.tokenizer, info: info as ModelInfo }),
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    rule,
    examples: options.scoreExamples ?? DEFAULT_SCORE_EXAMPLES,
    budget,
    ...(select === "fit" ? { fit: {} } : {}),
  };
}

/**
 * Fine-tuning steps for this run: the asked number, or by default DEFAULT_FINETUNE_STEPS for select
 * fit and loss when the CPU trainer can run `model` (a note says why not otherwise). An explicit
 * number the trainer cannot honour is refused before any work.
 */
async function finetunePlan(
  select: SelectMode,
  model: string | undefined,
  asked: number | undefined,
  notes: string[],
): Promise<number> {
  if (select === "method" || asked === 0) return 0;
  const [m, r] = [option("model"), option("finetune")];
  if (model === undefined) {
    if (asked !== undefined)
      throw usageError(
        `fine-tuning trains from the base model: give ${m.text}, a Hugging Face model directory`,
        [m],
      );
    notes.push(
      "not fine-tuned: no base model given (pass --model, a Hugging Face model directory, to fine-tune the mix)",
    );
    return 0;
  }
  const why = await finetuneUnavailable(resolve(model));
  if (why === null) return asked ?? DEFAULT_FINETUNE_STEPS;
  if (asked !== undefined) throw usageError(`${why}; drop ${r.text}`, [r]);
  notes.push(`not fine-tuned: ${why}`);
  return 0;
}
