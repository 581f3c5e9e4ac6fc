import { loadDataset } from "../datasets/load.js";
import { throwIfAborted } from "../errors.js";
import type { LlamaBackend } from "../eval/llamaBackend.js";
import { lossCandidates } from "../select/candidates.js";
import { scoreExamples } from "../select/examples.js";
import { DEFAULT_FIT_TOP, DEFAULT_FIT_TRIALS } from "../select/fitWeights.js";
import { LlamaScorer } from "../select/llamaScorer.js";
import { selectByLoss } from "../select/selectByLoss.js";
import { testbedRule } from "../testbed/references.js";
import type { ProgressSink } from "../util/progress.js";
import { type DemoSetup, targetRow } from "./setup.js";
import { secondsPerTarget } from "./tables.js";
import type { WeightRows } from "./weights.js";

/** One target's --select loss run (and --select fit on top), as results.json records it. */
export interface TargetSelection {
  chosen: string;
  seconds: number;
  baseLoss: number;
  candidates: { label: string; loss: number }[];
  fit?: { loss: number; startLoss: number; seconds: number };
}

/**
 * `generate --select loss` (and `--select fit`) per target, with the bank minus the target as a
 * user with a new dataset has it: candidates by output-side JS, scored on the target's train
 * records with the testbed's training rule. Adds the rows "select-loss" and "select-fit".
 */
export async function selectPerTarget(
  setup: DemoSetup,
  backend: LlamaBackend,
  paper: { weightRows: WeightRows; answerJs: Float64Array },
  {
    nearest,
    examples: exampleCount,
    budget,
    fit,
    signal,
    progress,
  }: {
    nearest: number;
    examples: number;
    budget: number | null;
    fit: boolean;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ selections: Record<string, TargetSelection>; notes: string[] }> {
  const { entries, ids, targets, settings } = setup;
  const n = ids.length;
  const adapters = entries.map((e) => e.adapterPath as string);
  const selected = new Float64Array(n * n);
  const fitted = new Float64Array(n * n);
  const selections: Record<string, TargetSelection> = {};
  const scorer = LlamaScorer.over(backend);
  for (const [t, task] of targets.entries()) {
    throwIfAborted(signal);
    const i = setup.column.get(task) as number;
    const entry = entries[i] as (typeof entries)[number];
    const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
    const examples = scoreExamples(dataset.splits.train, scorer, testbedRule(settings), exampleCount);
    const selection = await selectByLoss({
      scorer,
      adapters,
      candidates: lossCandidates(targetRow(setup, paper.answerJs, task), ids, {
        nearest,
        mask: ids.map((_, j) => j === i),
      }),
      examples,
      budget,
      ...(fit ? { fit: {} } : {}),
      signal,
    });
    const chosen = selection.scored[selection.chosen] as (typeof selection.scored)[number];
    selected.set(chosen.weights, i * n);
    const record: TargetSelection = {
      chosen: chosen.label,
      seconds: selection.seconds,
      baseLoss: selection.baseLoss,
      candidates: selection.scored.map((c) => ({ label: c.label, loss: c.loss })),
    };
    if (selection.fit) {
      const f = selection.fit;
      fitted.set(selection.weights, i * n);
      record.fit = { loss: f.loss, startLoss: f.startLoss, seconds: f.seconds };
    }
    selections[task] = record;
    progress?.({ phase: "select", done: t + 1, total: targets.length, unit: "targets", detail: task });
  }
  paper.weightRows.set("select-loss", selected);
  if (fit) paper.weightRows.set("select-fit", fitted);

  const notes = [
    `--select loss: ${secondsPerTarget(Object.values(selections).map((x) => x.seconds))} to score its candidates`,
  ];
  if (fit) {
    const fitSeconds = Object.values(selections).map((x) => x.fit?.seconds ?? 0);
    notes.push(
      `--select fit: ${DEFAULT_FIT_TRIALS} trials over the ${DEFAULT_FIT_TOP} best candidates, ${secondsPerTarget(fitSeconds)} on top of selection`,
    );
  }
  return { selections, notes };
}
