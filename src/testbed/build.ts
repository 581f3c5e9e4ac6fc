import { existsSync, readlinkSync } from "node:fs";
import { readFile, rm, symlink } from "node:fs/promises";
import { basename, join, relative } from "node:path";
import { addEntry } from "../bank/add.js";
import { indexBank } from "../bank/indexBank.js";
import { BANK_FILE } from "../bank/schema.js";
import { Bank } from "../bank/store.js";
import { loadDataset } from "../datasets/load.js";
import type { DatasetRecord } from "../datasets/record.js";
import { bankDistanceMatrices } from "../distances/matrix.js";
import { METRICS } from "../distances/metric.js";
import { inputError, throwIfAborted, usageError } from "../errors.js";
import { ADAPTER_WEIGHTS } from "../formats/fileNames.js";
import type { SequenceRule } from "../train/examples.js";
import { checkOutDir, writeFileAtomic } from "../util/atomic.js";
import { forEachConcurrent } from "../util/concurrent.js";
import { hashPath } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";
import { bankGram } from "../weights/gram.js";
import { analyzeSniDir } from "./analyze.js";
import { openTestbedBackend } from "./backend.js";
import { type MajorityScore, majorityScore } from "./majority.js";
import { hasModel, TESTBED_FILES, testbedPaths } from "./paths.js";
import {
  DEFAULT_EVAL,
  type EvalSettings,
  evalRecords,
  type Scored,
  scoreBackend,
  testbedRule,
} from "./references.js";
import { familyOfTask, selectTasks, type TaskSelection, tasksMarkdown } from "./tasks.js";

/** What `testbed build` asks of the LoRA trainer for one task. */
export interface TrainTaskOptions {
  /** Hugging Face Llama directory of the base model. */
  model: string;
  /** base_model_name_or_path of the adapter. */
  baseModelName: string;
  records: DatasetRecord[];
  /** Adapter directory to write (atomically). */
  out: string;
  steps: number;
  /** Seeds the shared initialisation of A, identical for every task of the testbed. */
  seed: number;
  /** The sequence rule, the same as the references' context (testbedRule). */
  rule: SequenceRule;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export type TaskTrainer = (options: TrainTaskOptions) => Promise<unknown>;

export interface BuildOptions {
  /** Testbed directory (default: the shipped `testbed/`). */
  out?: string;
  /** The shared data folder (default: ../shared beside the repository). */
  shared?: string;
  /** Build only these tasks of the selection (default: all of it). */
  tasks?: string[];
  steps?: number;
  seed?: number;
  eval?: Partial<EvalSettings>;
  trainer: TaskTrainer;
  /** Free-form trainer settings recorded in build.json (batch, learning rate...). */
  trainerSettings?: Record<string, unknown>;
  threads?: number;
  /** Adapters trained side by side (the trainer must run them on separate threads to gain). */
  jobs?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface TaskReference {
  family: string;
  heldOut: boolean;
  adapterHash: string;
  eval: EvalSettings;
  trainRecords: number;
  testRecords: number;
  majority: Omit<MajorityScore, "n"> & { n: number };
  base: Omit<Scored, "perRecord">;
  trained: Omit<Scored, "perRecord">;
}

export interface BuildResult {
  dir: string;
  tasks: string[];
  trained: string[];
  evaluated: string[];
  seconds: { train: number; bank: number; references: number; total: number };
}

export const DEFAULT_STEPS = 200;
export const DEFAULT_SEED = 20250701;

/**
 * Builds (or continues building) the testbed: selects the tasks (TASKS.md), trains one LoRA per task
 * from one shared seeded initialisation, files them in a bank with their datasets and profiles, and
 * records every task's reference scores (own adapter, base model, majority answer). Each adapter and
 * each reference is written as soon as it is done, so a rerun does only what is missing or stale.
 */
export async function buildTestbed({
  out,
  shared,
  tasks,
  steps = DEFAULT_STEPS,
  seed = DEFAULT_SEED,
  eval: evalOptions = {},
  trainer,
  trainerSettings = {},
  threads = 1,
  jobs = 1,
  signal,
  progress,
}: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const paths = testbedPaths(out, shared);
  if (!hasModel(paths)) throw inputError(paths.model, "the TinyStories-656K model is missing");
  if (!existsSync(paths.sni)) throw inputError(paths.sni, "the Super-NI task folder is missing");
  if (!(Number.isInteger(steps) && steps >= 1))
    throw usageError(`steps must be a positive integer, got ${steps}`);
  const settings: EvalSettings = { ...DEFAULT_EVAL, ...evalOptions };
  // A build resumes rather than replaces: a testbed is known by selection.json, written first.
  await checkOutDir(paths.dir, "testbed", (names) => names.includes(TESTBED_FILES.selection));

  const answers = await analyzeSniDir(paths.sni, { signal });
  const full = selectTasks(answers);
  for (const t of tasks ?? []) {
    if (!full.tasks.includes(t))
      throw usageError(`task "${t}" is not in the testbed selection (see ${TESTBED_FILES.tasks})`);
  }
  const chosen = tasks ? full.tasks.filter((t) => tasks.includes(t)) : full.tasks;
  const selection = restrict(full, chosen);
  await writeFileAtomic(join(paths.dir, TESTBED_FILES.selection), `${JSON.stringify(selection, null, 2)}\n`);
  await writeFileAtomic(join(paths.dir, TESTBED_FILES.tasks), tasksMarkdown(full, answers));
  await linkData(paths.dir, paths.sni);
  const familyOf = familyOfTask(selection);

  const dataFile = (task: string) => join(paths.dir, TESTBED_FILES.data, `${task}.json`);
  const adapterDir = (task: string) => join(paths.dir, TESTBED_FILES.adapters, task);
  const trained: string[] = [];
  const trainStarted = performance.now();
  const buildLog = await readJson<{ trainSeconds?: Record<string, number> }>(
    join(paths.dir, TESTBED_FILES.build),
  );
  const trainSeconds: Record<string, number> = buildLog?.trainSeconds ?? {};
  const missing = chosen.filter((task) => !existsSync(join(adapterDir(task), ADAPTER_WEIGHTS)));
  let finished = chosen.length - missing.length;
  // Lanes finish in any order; chained writes keep an older snapshot from landing last.
  let logged = Promise.resolve();
  progress?.({ phase: "train", done: finished, total: chosen.length, unit: "adapters" });
  await forEachConcurrent(missing, jobs, async (task) => {
    throwIfAborted(signal);
    const t0 = performance.now();
    const dataset = await loadDataset(dataFile(task), { format: "sni" });
    await trainer({
      model: paths.model,
      // The shipped adapters name the model, not this machine's path to it; the bank knows the path.
      baseModelName: basename(paths.model),
      records: dataset.splits.train,
      out: adapterDir(task),
      steps,
      seed,
      rule: testbedRule(settings),
      signal,
    });
    trainSeconds[task] = (performance.now() - t0) / 1000;
    trained.push(task);
    const log = { seed, steps, trainerSettings, trainSeconds: sortKeys(trainSeconds) };
    logged = logged.then(() => writeBuildLog(paths.dir, log));
    await logged;
    progress?.({ phase: "train", done: ++finished, total: chosen.length, unit: "adapters", detail: task });
  });
  const trainTime = (performance.now() - trainStarted) / 1000;

  const bankStarted = performance.now();
  const bank = existsSync(join(paths.dir, BANK_FILE))
    ? await Bank.open(paths.dir)
    : await Bank.init(paths.dir, { tokenizer: paths.model, baseModel: paths.model });
  if (bank.baseModel === null) await bank.setBaseModel(paths.model);
  const evaluated: string[] = [];
  let referenceTime = 0;
  try {
    for (const [i, task] of chosen.entries()) {
      throwIfAborted(signal);
      const entry = bank.entry(task);
      const hash = await hashPath(adapterDir(task), signal);
      if (!entry || entry.adapterHash !== hash) {
        await addEntry(bank, {
          id: task,
          data: dataFile(task),
          adapter: adapterDir(task),
          dataOptions: { format: "sni" },
          metadata: {
            family: familyOf.get(task),
            heldOut: selection.heldOut.includes(task),
            origin: "loramix testbed",
          },
          replace: entry !== undefined,
          signal,
        });
      }
      progress?.({ phase: "bank", done: i + 1, total: chosen.length, unit: "entries" });
    }
    await indexBank(bank, { threads, signal, progress });
    await indexBank(bank, { side: "output", threads, signal, progress });
    // Cached in bank.sqlite, so `loramix demo` only reads them.
    await bankDistanceMatrices(bank, METRICS, { signal, progress });
    await bankDistanceMatrices(bank, ["js"], { side: "output", signal, progress });
    await bankGram(bank, { signal, progress });
    const bankTime = (performance.now() - bankStarted) / 1000;

    const refStarted = performance.now();
    const refFile = join(paths.dir, TESTBED_FILES.references);
    const references = (await readJson<Record<string, TaskReference>>(refFile)) ?? {};
    for (const id of Object.keys(references)) if (!chosen.includes(id)) delete references[id];
    const stale = chosen.filter((task) => {
      const r = references[task];
      return (
        !r ||
        r.adapterHash !== bank.entry(task)?.adapterHash ||
        JSON.stringify(r.eval) !== JSON.stringify(settings)
      );
    });
    if (stale.length > 0) {
      const { backend, close } = await openTestbedBackend(paths, { context: settings.context, threads });
      try {
        for (const [i, task] of stale.entries()) {
          throwIfAborted(signal);
          const dataset = await loadDataset(dataFile(task), { format: "sni" });
          const records = evalRecords(dataset.splits.test, backend.tokenizer, settings);
          const own = await backend.withAdapter(adapterDir(task));
          const trainedScore = await scoreBackend(own, records, settings, signal);
          await own.dispose();
          const baseScore = await scoreBackend(backend, records, settings, signal);
          const majority = majorityScore(dataset.splits.train, dataset.splits.test.slice(0, settings.limit));
          references[task] = {
            family: familyOf.get(task) ?? "",
            heldOut: selection.heldOut.includes(task),
            adapterHash: bank.entry(task)?.adapterHash ?? "",
            eval: settings,
            trainRecords: dataset.splits.train.length,
            testRecords: records.length,
            majority,
            base: { rougeL: baseScore.rougeL, exactMatch: baseScore.exactMatch },
            trained: { rougeL: trainedScore.rougeL, exactMatch: trainedScore.exactMatch },
          };
          evaluated.push(task);
          await writeFileAtomic(refFile, `${JSON.stringify(sortKeys(references), null, 1)}\n`);
          progress?.({ phase: "references", done: i + 1, total: stale.length, unit: "tasks", detail: task });
        }
      } finally {
        await close();
      }
    }
    referenceTime = (performance.now() - refStarted) / 1000;
    const total = (performance.now() - started) / 1000;
    await writeBuildLog(paths.dir, {
      seed,
      steps,
      trainerSettings,
      trainSeconds: sortKeys(trainSeconds),
      lastRun: {
        jobs,
        trained: trained.length,
        evaluated: evaluated.length,
        seconds: { train: trainTime, bank: bankTime, references: referenceTime, total },
      },
    });
    return {
      dir: paths.dir,
      tasks: chosen,
      trained,
      evaluated,
      seconds: { train: trainTime, bank: bankTime, references: referenceTime, total },
    };
  } finally {
    bank.close();
  }
}

/** The selection narrowed to the tasks actually built. */
function restrict(full: TaskSelection, tasks: string[]): TaskSelection {
  const keep = new Set(tasks);
  const families = full.families
    .map((f) => ({ ...f, tasks: f.tasks.filter((t) => keep.has(t)) }))
    .filter((f) => f.tasks.length > 0);
  return { families, tasks, heldOut: full.heldOut.filter((t) => keep.has(t)) };
}

/** `<dir>/sni` → the shared task folder, as a relative link so the repository can live anywhere. */
async function linkData(dir: string, sni: string): Promise<void> {
  const link = join(dir, TESTBED_FILES.data);
  const target = relative(dir, sni);
  let current: string | undefined;
  try {
    current = readlinkSync(link);
  } catch {
    current = undefined;
  }
  if (current === target) return;
  await rm(link, { force: true, recursive: false });
  await symlink(target, link, "dir");
}

async function readJson<T>(file: string): Promise<T | undefined> {
  if (!existsSync(file)) return undefined;
  return JSON.parse(await readFile(file, "utf8")) as T;
}

async function writeBuildLog(dir: string, log: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(join(dir, TESTBED_FILES.build), `${JSON.stringify(log, null, 2)}\n`);
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
}
