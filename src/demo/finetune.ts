import { join } from "node:path";
import { loadDataset } from "../datasets/load.js";
import { throwIfAborted } from "../errors.js";
import { mixAndFinetune } from "../generate/finetune.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import { DEFAULT_SEED } from "../testbed/build.js";
import { testbedRule } from "../testbed/references.js";
import { DEFAULT_FINETUNE_LR, finetuneRecords } from "../train/finetuneLora.js";
import { TRAIN_DEFAULTS } from "../train/trainLora.js";
import { TrainPool } from "../train/trainPool.js";
import type { ProgressSink } from "../util/progress.js";
import { type DemoSetup, targetRow } from "./setup.js";
import { secondsPerTarget } from "./tables.js";
import type { WeightRows } from "./weights.js";

/** Both results, or the first rejection once both have settled. */
async function settleBoth<A, B>(work: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled(work);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return [a.value, b.value];
}

/** variant → target → the adapter directory to evaluate. */
export type AdapterRows = Map<string, Map<string, string>>;

/**
 * loramix's default per target: the `--select fit` mix fine-tuned by `steps` training steps on the
 * target's first steps × batch train records ("finetuned"), beside the control that shows what the
 * bank adds: the same steps on the same records from the testbed's seeded initialisation, without
 * a bank ("scratch"). The two run side by side (the control in a worker thread); adapters are
 * written under `tmp`.
 */
export async function finetunePerTarget(
  setup: DemoSetup,
  weightRows: WeightRows,
  {
    steps,
    tmp,
    signal,
    progress,
  }: { steps: number; tmp: string; signal?: AbortSignal; progress?: ProgressSink },
): Promise<{ adapters: AdapterRows; notes: string[] }> {
  const { entries, targets, settings, paths } = setup;
  const fit = weightRows.get("select-fit");
  if (fit === undefined) throw new Error("finetunePerTarget needs the select-fit weights");
  const adapters = entries.map((e) => e.adapterPath as string);
  const finetuned = new Map<string, string>();
  const scratch = new Map<string, string>();
  const seconds = { finetuned: [] as number[], scratch: [] as number[] };
  const rule = testbedRule(settings);
  const pool = new TrainPool(1);
  try {
    for (const [t, task] of targets.entries()) {
      throwIfAborted(signal);
      const entry = entries[setup.column.get(task) as number] as (typeof entries)[number];
      const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
      const records = finetuneRecords(dataset.splits.train, steps);
      const outFinetuned = join(tmp, `${task}-finetuned`);
      const outScratch = join(tmp, `${task}-scratch`);
      // Both settle before anything moves on, so a failure of one leaves no write under `tmp` behind.
      const [r, s] = await settleBoth([
        mixAndFinetune(
          (dir) => mixAdapters({ adapters, weights: [...targetRow(setup, fit, task)], out: dir, signal }),
          { model: paths.model, records, steps, rule, out: outFinetuned, signal },
        ),
        pool.train({
          model: paths.model,
          records,
          out: outScratch,
          steps,
          lr: DEFAULT_FINETUNE_LR,
          // The seeded initialisation of A; the batches come in the fine-tuning's order.
          seed: DEFAULT_SEED,
          shuffleSeed: TRAIN_DEFAULTS.seed,
          rule,
          signal,
        }),
      ]);
      finetuned.set(task, outFinetuned);
      scratch.set(task, outScratch);
      seconds.finetuned.push(r.finetune.seconds);
      seconds.scratch.push(s.seconds);
      progress?.({ phase: "finetune", done: t + 1, total: targets.length, unit: "targets", detail: task });
    }
  } finally {
    await pool.close();
  }
  return {
    adapters: new Map([
      ["finetuned", finetuned],
      ["scratch", scratch],
    ]),
    notes: [
      `fine-tune: the --select fit mix trained ${steps} steps × ${TRAIN_DEFAULTS.batchSize} on the target's first ${steps * TRAIN_DEFAULTS.batchSize} train records (lr ${DEFAULT_FINETUNE_LR}, linear decay), ${secondsPerTarget(seconds.finetuned)}; control: the same steps, learning rate, records and batch order from the testbed's seeded initialisation (seed ${DEFAULT_SEED}), no bank, ${secondsPerTarget(seconds.scratch)}; the two run side by side`,
    ],
  };
}
