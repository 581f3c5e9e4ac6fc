import type { BankEntry } from "../bank/store.js";
import type { DatasetRecord } from "../datasets/record.js";
import { inputError } from "../errors.js";
import { lossCandidates } from "../select/candidates.js";
import { scoreExamples } from "../select/examples.js";
import { openScorer } from "../select/openScorer.js";
import { type LossSelection, type SelectionEstimate, selectByLoss } from "../select/selectByLoss.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { ProgressSink } from "../util/progress.js";
import { methodWeights } from "../weights/methods.js";
import type { TrainedMlp } from "../weights/mlp.js";
import type { GeneratePlan, SelectMode } from "./plan.js";
import type { TargetSource } from "./target.js";

/** What a select mode chose: weights over the bank's adapters, and what it learned on the way. */
export interface WeightChoice {
  /** Before top-k / min-weight pruning. */
  weights: Float64Array;
  /** select fit and loss, when candidates were scored. */
  selection?: LossSelection;
  notes: string[];
}

/** What every strategy may read: the bank's adapters, the target and its distances to them. */
export interface ChoiceInputs {
  /** The bank's tokenizer spec (a server scores with it). */
  bankTokenizer: string;
  /** The bank's entries that have an adapter, in the order of every weight vector. */
  entries: readonly BankEntry[];
  distances: Float64Array;
  source: TargetSource;
  /** The first train records (null when the target is a profile.json). */
  train: DatasetRecord[] | null;
  mlp: TrainedMlp | undefined;
  signal?: AbortSignal;
  progress?: ProgressSink;
  onEstimate?: (estimate: SelectionEstimate) => void;
}

type Strategy = (plan: GeneratePlan, inputs: ChoiceInputs) => Promise<WeightChoice>;

/** One strategy per select mode. A new dataset has no self entry: the normalized statistics are over its N distances (SPEC §4). */
const STRATEGIES: Record<SelectMode, Strategy> = {
  method: async (plan, { distances, mlp }) => ({
    weights: methodWeights(plan.method, distances, { temperature: plan.temperature, mlp }),
    notes: [],
  }),
  loss: byLoss,
  fit: byLoss,
};

export function chooseWeights(plan: GeneratePlan, inputs: ChoiceInputs): Promise<WeightChoice> {
  return STRATEGIES[plan.select](plan, inputs);
}

/**
 * select fit and loss: the nearest adapters and a few mixtures scored on the train records, the
 * lowest loss kept (and, for fit, refined). Without a model, or with a profile for a target, the
 * nearest adapter is taken and a note says why.
 */
async function byLoss(plan: GeneratePlan, inputs: ChoiceInputs): Promise<WeightChoice> {
  const { entries, distances, train, source, signal, progress } = inputs;
  const candidates = lossCandidates(
    distances,
    entries.map((e) => e.id),
    { nearest: plan.nearest },
  );
  const scoring = plan.scoring;
  if (scoring === null || train === null) {
    const nearest = (candidates[0] as (typeof candidates)[number]).weights;
    return {
      weights: nearest,
      notes: [
        scoring === null
          ? `no base model given to score candidates with: took the nearest adapter by ${plan.side}-side ${plan.metric}; pass --model <GGUF or Hugging Face dir> to score ${candidates.length} candidates on the train records`
          : "the target is a profile, which has no train records to score candidates on: took the nearest adapter; pass the dataset itself",
      ],
    };
  }
  const scorer = await openScorer({ ...scoring, bankTokenizer: inputs.bankTokenizer });
  const notes: string[] = [];
  let selection: LossSelection;
  try {
    notes.push(...(await vocabularyNote(scorer.tokenizer, inputs.bankTokenizer, train)));
    const examples = scoreExamples(train, scorer, scoring.rule, scoring.examples);
    if (examples.length === 0)
      throw inputError(source.path, "no train records with an output to score candidates on");
    if (examples.length < scoring.examples)
      notes.push(
        `the train split has ${examples.length} records with an output: scored on all of them, not ${scoring.examples}`,
      );
    selection = await selectByLoss({
      scorer,
      adapters: entries.map((e) => e.adapterPath as string),
      candidates,
      examples,
      budget: scoring.budget,
      ...(scoring.fit ? { fit: scoring.fit } : {}),
      signal,
      progress,
      ...(inputs.onEstimate ? { onEstimate: inputs.onEstimate } : {}),
    });
  } finally {
    await scorer.dispose();
  }
  return { weights: selection.weights, selection, notes: [...notes, ...selectionNotes(selection)] };
}

/**
 * Profiles count the bank's tokens, scoring the model's own: when the two tokenize the dataset
 * differently (a GGUF whose vocabulary is not the bank's), the user is told which does what.
 */
async function vocabularyNote(
  model: Tokenizer,
  bankSpec: string,
  train: readonly DatasetRecord[],
): Promise<string[]> {
  const bank = await loadTokenizer(bankSpec);
  const sample = train.slice(0, 4).map((r) => `${r.input}${r.output[0] ?? ""}`);
  const same = sample.every((text) => bank.encode(text).join() === model.encode(text).join());
  if (same) return [];
  return [
    `the model's vocabulary (${model.vocabSize} tokens) tokenizes this dataset differently from the bank's tokenizer ${bank.name} (${bank.vocabSize}): distances use the bank's profiles, scoring the model's own tokens`,
  ];
}

/** Failed candidates, what the fit did, and a bank with nothing close to the task. */
function selectionNotes({ scored, chosen: k, fit, baseLoss }: LossSelection): string[] {
  const notes = scored
    .filter((c) => c.error !== undefined)
    .map((c) => `candidate ${c.label} could not be scored: ${c.error}`);
  const chosen = scored[k] as (typeof scored)[number];
  if (fit) {
    notes.push(
      fit.loss < chosen.loss
        ? `fit: the refined mix lowers the train loss from ${chosen.loss.toFixed(4)} to ${fit.loss.toFixed(4)} (${fit.trials} trials, ${fit.seconds.toFixed(1)} s)`
        : `fit: no refined mix beat the best candidate in ${fit.trials} trials; kept ${chosen.label}`,
    );
    if (fit.failed)
      notes.push(
        `fit: ${fit.failed.count} of ${fit.trials} trials could not be scored; the first: ${fit.failed.first}`,
      );
  }
  if (chosen.loss >= baseLoss)
    notes.push(
      `no candidate beats the base model on the train records (loss ${chosen.loss.toFixed(4)} ≥ base ${baseLoss.toFixed(4)}): the bank may have nothing close to this task`,
    );
  return notes;
}
