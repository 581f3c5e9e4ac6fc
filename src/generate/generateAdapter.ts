import { resolve } from "node:path";
import { indexBank } from "../bank/indexBank.js";
import { type Bank, withBank } from "../bank/store.js";
import { checkAdaptersUnchanged } from "../bank/unchanged.js";
import type { DatasetOptions } from "../datasets/load.js";
import { bankProfiles } from "../distances/matrix.js";
import { METRICS, type Metric, type MmdMode } from "../distances/metric.js";
import { distancesToCandidates } from "../distances/pairwise.js";
import { inputError, LoramixError, option, throwIfAborted, usageError } from "../errors.js";
import type { OpenAIBackendOptions } from "../eval/openaiBackend.js";
import { loadAdapter } from "../formats/peft.js";
import { MIX_MODES, type MixMode, type MixResult, mixAdapters } from "../merge/mixAdapters.js";
import { isSyntheticAdapter } from "../merge/sources.js";
import { updateNormRatio } from "../merge/updateNorm.js";
import { PROFILE_SIDES, type ProfileSide } from "../profiles/profile.js";
import { lossCandidates } from "../select/candidates.js";
import { type FitResult, fitWeights } from "../select/fitWeights.js";
import { LlamaScorer } from "../select/llamaScorer.js";
import { OpenAIScorer } from "../select/openaiScorer.js";
import type { CandidateScorer } from "../select/scorer.js";
import {
  DEFAULT_SCORE_EXAMPLES,
  type Selection,
  scoreExamples,
  selectByLoss,
} from "../select/selectByLoss.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { DEFAULT_MAX_LENGTH, DEFAULT_MAX_OUTPUT_TOKENS } from "../train/examples.js";
import { checkFinetuneSteps, DEFAULT_FINETUNE_STEPS, finetuneUnavailable } from "../train/finetuneLora.js";
import { TRAIN_DEFAULTS } from "../train/trainLora.js";
import { checkOutDir } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { loadBankMlp, mlpKey } from "../weights/bankMlp.js";
import { gramKey } from "../weights/gram.js";
import { methodWeights, neuralSideError, WEIGHT_METHODS, type WeightMethod } from "../weights/methods.js";
import { selectWeights } from "../weights/select.js";
import { type FinetuneRecord, mixAndFinetune } from "./finetune.js";
import { type Flatness, flatness } from "./flatness.js";
import { type CandidateWeight, provenanceRecord } from "./provenance.js";
import { targetProfile } from "./target.js";

export interface GenerateOptions {
  /** The target: a dataset (file or directory) or a profile.json made by `loramix profile` with the bank's tokenizer. */
  data: string;
  dataOptions?: DatasetOptions;
  metric?: Metric;
  /**
   * "fit" (the default when no `method` is given): "loss", then the mix of the best candidates
   * refined on the same train loss (`fitWeights`); it lowered the held-back valid loss more often
   * than it raised it (bench/select-fit.mjs). "loss": score candidates (nearest adapters and
   * mixtures) on the dataset's train records with `model` and keep the lowest loss. "method": the
   * paper's weighting `method` (default normalized) over the whole bank.
   */
  select?: "loss" | "fit" | "method";
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
  scoreServer?: Pick<OpenAIBackendOptions, "baseUrl" | "model" | "apiKey" | "timeoutMs" | "warn">;
  /** Nearest single adapters among the candidates (select fit and loss). */
  candidates?: number;
  /** Train records each candidate is scored on (select fit and loss). */
  scoreExamples?: number;
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

export interface GenerateResult {
  out: string;
  /** Every candidate, by decreasing weight (ties by id). */
  weights: CandidateWeight[];
  mix: MixResult;
  target: { records: number; datasetRecords: number | null; tokens: number; kind: "dataset" | "profile" };
  synthetic: boolean;
  /** select fit and loss: every candidate with its loss, and the choice. */
  selection?: Selection;
  /** The fine-tuning of the mix on the train records, when it ran. */
  finetune?: FinetuneRecord;
  /** How spread the weights are, and whether the mixture is likely to act like the base model. */
  flatness: Flatness;
  /** What the user should know about how the adapter was chosen (fallbacks, short datasets). */
  notes: string[];
  /** Seconds per phase: profile, distances, weights, mix, finetune (0 when it did not run). */
  timings: Record<"profile" | "distances" | "weights" | "mix" | "finetune", number>;
}

/**
 * The whole method for a new dataset (SPEC §2–5): profile it with the bank's tokenizer, measure
 * its distance to every bank entry that has an adapter, weight them, optionally keep the top-k /
 * those above min-weight, mix, and write the adapter directory with its loramix.json. `bank` is an
 * open bank or its directory (opened and closed here): like every bank operation, it comes first.
 */
export async function generateAdapter(
  bank: Bank | string,
  options: GenerateOptions,
): Promise<GenerateResult> {
  return withBank(bank, (opened) => generateWithBank(opened, options));
}

async function generateWithBank(bank: Bank, options: GenerateOptions): Promise<GenerateResult> {
  const {
    data,
    dataOptions,
    metric = "js",
    select = options.method === undefined ? "fit" : "method",
    side = select === "method" ? "both" : "output",
    method = "normalized",
    model,
    tokenizer: modelTokenizer,
    scoreServer,
    candidates: nearestCount,
    scoreExamples: exampleCount,
    finetune: finetuneAsked,
    context,
    answerTokens = DEFAULT_MAX_OUTPUT_TOKENS,
    merge = "linear",
    topK,
    minWeight,
    temperature = 1,
    mmd = "exact",
    mlpHidden = 64,
    mlpSeed = 0,
    out,
    threads,
    signal,
    progress,
  } = options;
  if (!METRICS.includes(metric)) throw usageError(`unknown metric "${metric}" (use ${METRICS.join(", ")})`);
  if (!WEIGHT_METHODS.includes(method))
    throw usageError(`unknown method "${method}" (use ${WEIGHT_METHODS.join(", ")})`);
  if (!PROFILE_SIDES.includes(side))
    throw usageError(`unknown side "${side}" (use ${PROFILE_SIDES.join(", ")})`);
  if (!["loss", "fit", "method"].includes(select))
    throw usageError(`unknown select "${select}" (use loss, fit or method)`);
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
  if (finetuneAsked !== undefined) checkFinetuneSteps(finetuneAsked);
  if (select === "method" && (finetuneAsked ?? 0) > 0) {
    const [r, s] = [option("finetune"), option("select", "fit")];
    throw usageError(
      `fine-tuning applies to select fit and loss; the paper's configurations stay as mixed: drop ${r.text}, or use ${s.text}`,
      [r, s],
    );
  }
  await checkOutDir(out, "adapter");
  const notes: string[] = [];
  const finetuneSteps = await finetunePlan(select, model, finetuneAsked, notes);
  const candidates = bank.entries().filter((e) => e.adapterPath !== null);
  if (candidates.length === 0) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: the bank has no adapters to mix (add entries with --adapter)`,
    );
  }
  await checkAdaptersUnchanged(bank, candidates, signal);
  // One-side profiles are a cache over the entries' outputs or inputs: made here when missing, as
  // they take seconds; "both" profiles are the bank's own (SPEC §2) and come from `bank index`.
  if (side !== "both" && candidates.some((e) => bank.profile(e.id, side) === undefined)) {
    const made = await indexBank(bank, { side, threads, signal, progress });
    if (made.problems.length > 0) throw new LoramixError("BANK", made.problems[0] as string);
  }
  const { profiles } = bankProfiles(bank, side, candidates);
  // The MLP is looked up before any work so that a missing one fails at once.
  const mlp =
    select === "method" && method === "neural"
      ? await loadBankMlp(bank, { metric, hidden: mlpHidden, seed: mlpSeed })
      : undefined;
  if (select === "method" && method === "neural" && !mlp) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: no trained MLP for metric ${metric} (H=${mlpHidden}, seed ${mlpSeed}) for the bank's current adapters; run \`loramix train-mlp ${bank.dir} --metric ${metric}\` first`,
    );
  }

  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
  const { profile, source, train } = await targetProfile(bank, data, {
    dataOptions,
    side,
    // finetuneLora trains on the first steps × batch records (finetuneRecords), so that many are kept.
    keep: Math.max(exampleCount ?? DEFAULT_SCORE_EXAMPLES, finetuneSteps * TRAIN_DEFAULTS.batchSize),
    threads,
    signal,
    progress,
  });
  const profileSeconds = lap();
  throwIfAborted(signal);
  if (finetuneSteps > 0 && train === null && finetuneAsked !== undefined) {
    throw usageError(
      `${source.path}: a profile has no train records to fine-tune on; give the dataset itself, or drop ${option("finetune").text}`,
      [option("finetune")],
    );
  }
  const distances = await distancesToCandidates(profile, profiles, metric, { mmd, signal, progress });
  const distanceSeconds = lap();
  // A new dataset has no self entry: the normalized statistics are over its N distances (SPEC §4).
  let selection: Selection | undefined;
  let fit: FitResult | undefined;
  let raw: Float64Array;
  /** The sequence rule candidates were scored with, which fine-tuning trains with. */
  let rule: { maxLength: number; maxOutputTokens: number } | undefined;
  if (select === "method") raw = methodWeights(method, distances, { temperature, mlp });
  else {
    const ids = candidates.map((e) => e.id);
    const set = lossCandidates(distances, ids, { nearest: nearestCount });
    if ((model === undefined && scoreServer === undefined) || train === null) {
      notes.push(
        model === undefined && scoreServer === undefined
          ? `no base model given to score candidates with: took the nearest adapter by ${side}-side ${metric}; pass --model <GGUF or Hugging Face dir> to score ${set.length} candidates on the train records`
          : "the target is a profile, which has no train records to score candidates on: took the nearest adapter; pass the dataset itself",
      );
      raw = (set[0] as (typeof set)[number]).weights;
    } else {
      const { scorer, tokenizer, contextSize, eosId } = await openScorer(
        bank,
        model,
        modelTokenizer,
        scoreServer,
        context,
      );
      rule = {
        maxLength: context ?? Math.min(DEFAULT_MAX_LENGTH, contextSize),
        maxOutputTokens: answerTokens,
      };
      try {
        const examples = scoreExamples(train, tokenizer, {
          count: exampleCount,
          context: rule.maxLength,
          answerTokens,
          eosId,
        });
        if (examples.length === 0)
          throw inputError(source.path, "no train records with an output to score candidates on");
        const wanted = exampleCount ?? DEFAULT_SCORE_EXAMPLES;
        if (examples.length < wanted)
          notes.push(
            `the train split has ${examples.length} records with an output: scored on all of them, not ${wanted}`,
          );
        selection = await selectByLoss({
          scorer,
          adapters: candidates.map((e) => e.adapterPath as string),
          candidates: set,
          examples,
          signal,
          progress,
        });
        if (select === "fit") {
          fit = await fitWeights({
            scorer,
            adapters: candidates.map((e) => e.adapterPath as string),
            scored: selection.scored,
            examples,
            signal,
            progress,
          });
        }
      } finally {
        await scorer.dispose();
      }
      const failed = selection.scored.filter((c) => c.error !== undefined);
      for (const c of failed) notes.push(`candidate ${c.label} could not be scored: ${c.error}`);
      const chosen = selection.scored[selection.chosen] as (typeof selection.scored)[number];
      raw = fit && fit.loss < chosen.loss ? fit.weights : chosen.weights;
      if (fit)
        notes.push(
          fit.loss < chosen.loss
            ? `fit: the refined mix lowers the train loss from ${chosen.loss.toFixed(4)} to ${fit.loss.toFixed(4)} (${fit.trials} trials, ${fit.seconds.toFixed(1)} s)`
            : `fit: no refined mix beat the best candidate in ${fit.trials} trials; kept ${chosen.label}`,
        );
      if (chosen.loss >= selection.baseLoss)
        notes.push(
          `no candidate beats the base model on the train records (loss ${chosen.loss.toFixed(4)} ≥ base ${selection.baseLoss.toFixed(4)}): the bank may have nothing close to this task`,
        );
    }
  }
  const selecting = topK !== undefined || minWeight !== undefined;
  const weights = selecting ? selectWeights(raw, { topK, minWeight }) : raw;
  const weightSeconds = lap();

  const rows: CandidateWeight[] = candidates.map((e, j) => ({
    id: e.id,
    weight: weights[j] as number,
    distance: distances[j] as number,
    ...(selecting ? { rawWeight: raw[j] as number } : {}),
  }));
  rows.sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const syntheticCount = candidates.filter((e) => isSyntheticAdapter(e.adapterPath as string)).length;
  const hashes = candidates.map((e) => e.adapterHash).filter((h): h is string => h !== null);
  const config = provenanceRecord({
    bank: { dir: bank.dir, tokenizer: bank.tokenizerName, createdBy: bank.createdBy },
    target: source,
    adapters: candidates
      .filter((_, j) => (weights[j] as number) !== 0)
      .map((e) => ({ id: e.id, path: e.adapterPath as string, hash: e.adapterHash })),
    metric,
    method: select === "method" ? method : `select-${select}`,
    merge,
    options: {
      side,
      ...(selection
        ? {
            selection: {
              model,
              examples: selection.examples,
              baseLoss: selection.baseLoss,
              chosen: selection.scored[selection.chosen]?.label,
              ...(fit
                ? {
                    fit: {
                      loss: fit.loss,
                      startLoss: fit.startLoss,
                      trials: fit.trials,
                      kept: fit.loss < fit.startLoss,
                    },
                  }
                : {}),
              candidates: selection.scored.map((c) => ({
                label: c.label,
                kind: c.kind,
                loss: Number.isFinite(c.loss) ? c.loss : null,
                seconds: c.seconds,
                ...(c.error ? { error: c.error } : {}),
              })),
            },
          }
        : {}),
      topK: topK ?? null,
      minWeight: minWeight ?? null,
      temperature,
      ...(metric === "mmd" ? { mmd } : {}),
      ...(mlp
        ? {
            mlp: {
              hidden: mlpHidden,
              seed: mlpSeed,
              key: mlpKey(metric, mlpHidden, mlpSeed, gramKey(hashes)),
            },
          }
        : {}),
    },
    weights: rows,
    synthetic: { count: syntheticCount, of: candidates.length },
  });
  const mixTo = (dir: string) =>
    mixAdapters({
      adapters: candidates.map((e) => e.adapterPath as string),
      weights: [...weights],
      mode: merge,
      out: dir,
      config,
      ...(bank.baseModel !== null ? { baseModel: bank.baseModel } : {}),
      signal,
      progress,
    });
  let mix: MixResult;
  let finetune: FinetuneRecord | undefined;
  if (finetuneSteps > 0 && rule !== undefined && train !== null) {
    ({ mix, finetune } = await mixAndFinetune(mixTo, {
      model: model as string,
      records: train,
      steps: finetuneSteps,
      ...rule,
      out,
      signal,
      progress,
    }));
    notes.push(
      `fine-tune: ${finetune.steps} training steps on ${finetune.examples} train records lowered the batch loss from ${finetune.firstLoss.toFixed(4)} to ${finetune.finalLoss.toFixed(4)} (${finetune.seconds.toFixed(1)} s)`,
    );
  } else {
    // finetunePlan returned steps only for a usable model, so the target is a profile here.
    if (finetuneSteps > 0) notes.push("not fine-tuned: a profile has no train records to fine-tune on");
    mix = await mixTo(out);
  }
  if (mix.rank > VLLM_MAX_LORA_RANK)
    notes.push(
      `the adapter has rank ${mix.rank}: vLLM refuses LoRAs above its --max-lora-rank (default ${VLLM_MAX_LORA_RANK}); start it with --max-lora-rank ${[32, 64, 128, 256, 320, 512].find((r) => r >= mix.rank) ?? mix.rank}`,
    );
  const spread = flatness(weights, await contributorsNorm(candidates, weights, signal));
  return {
    out: mix.out,
    weights: rows,
    mix,
    target: {
      records: source.records,
      datasetRecords: source.datasetRecords,
      tokens: source.tokens,
      kind: source.kind,
    },
    synthetic: syntheticCount > 0,
    ...(selection ? { selection } : {}),
    ...(finetune ? { finetune } : {}),
    // The warning is about a mix that acts like the base model; a fine-tuned one was fitted to the data.
    flatness: finetune ? { ...spread, warning: null } : spread,
    notes,
    timings: {
      profile: profileSeconds,
      distances: distanceSeconds,
      weights: weightSeconds,
      mix: lap() - (finetune?.seconds ?? 0),
      finetune: finetune?.seconds ?? 0,
    },
  };
}

/**
 * Fine-tuning steps for this run: the asked number, or by default DEFAULT_FINETUNE_STEPS for select
 * fit and loss when the CPU trainer can run `model` (a note says why not otherwise). An explicit
 * number the trainer cannot honour is refused before any work.
 */
async function finetunePlan(
  select: "fit" | "loss" | "method",
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

/**
 * vLLM's default `--max-lora-rank`; LoRAConfig.__post_init__ (vllm/config/lora.py) accepts
 * `possible_max_ranks = (8, 16, 32, 64, 128, 256, 320, 512)`, hence the suggestion below.
 */
const VLLM_MAX_LORA_RANK = 16;

/**
 * The scorer and what examples are built with. A base model llama.cpp cannot load is refused
 * here, before any candidate is mixed or scored.
 */
async function openScorer(
  bank: Bank,
  model: string | undefined,
  tokenizer: string | undefined,
  server: GenerateOptions["scoreServer"],
  context: number | undefined,
): Promise<{ scorer: CandidateScorer; tokenizer: Tokenizer; contextSize: number; eosId: number }> {
  if (server) {
    const tokenizer = await loadTokenizer(bank.tokenizer);
    const eos = tokenizer.eosText === null ? [] : tokenizer.encode(tokenizer.eosText);
    return {
      scorer: new OpenAIScorer(server),
      tokenizer,
      contextSize: context ?? DEFAULT_MAX_LENGTH,
      eosId: eos.length === 1 ? (eos[0] as number) : 2,
    };
  }
  try {
    const scorer = await LlamaScorer.open({
      model: model as string,
      tokenizer: tokenizer ?? (bank.tokenizer === "mistral" ? undefined : bank.tokenizer),
      ...(context === undefined ? {} : { contextSize: context }),
    });
    return {
      scorer,
      tokenizer: scorer.backend.tokenizer,
      contextSize: scorer.backend.contextSize,
      eosId: scorer.backend.eosId ?? 2,
    };
  } catch (error) {
    if (error instanceof LoramixError) throw error;
    throw inputError(
      model as string,
      `llama.cpp cannot load this base model (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
}

/** The update norm ratio of the mix, or null when it would be too costly or the layouts refuse it. */
async function contributorsNorm(
  entries: readonly { adapterPath: string | null }[],
  weights: Float64Array,
  signal: AbortSignal | undefined,
): Promise<number | null> {
  const used = entries.flatMap((e, j) =>
    (weights[j] as number) !== 0 ? [{ path: e.adapterPath as string, w: weights[j] as number }] : [],
  );
  try {
    const adapters = await Promise.all(used.map((u) => loadAdapter(u.path)));
    return await updateNormRatio(
      adapters,
      used.map((u) => u.w),
      { signal },
    );
  } catch (error) {
    if (error instanceof LoramixError && error.code === "LAYOUT") return null;
    throw error;
  }
}
