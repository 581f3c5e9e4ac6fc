import { indexBank } from "../bank/indexBank.js";
import { type Bank, type BankEntry, withBank } from "../bank/store.js";
import { checkAdaptersUnchanged } from "../bank/unchanged.js";
import { bankProfiles } from "../distances/matrix.js";
import { distancesToCandidates } from "../distances/pairwise.js";
import { LoramixError, option, throwIfAborted, usageError } from "../errors.js";
import type { MixResult } from "../merge/mixAdapters.js";
import { isSyntheticAdapter } from "../merge/sources.js";
import type { Profile } from "../profiles/profile.js";
import type { LossSelection } from "../select/selectByLoss.js";
import type { ProgressSink } from "../util/progress.js";
import { loadBankMlp, mlpKey } from "../weights/bankMlp.js";
import { gramKey } from "../weights/gram.js";
import type { TrainedMlp } from "../weights/mlp.js";
import { pruneWeights } from "../weights/prune.js";
import { checkModelFitsBank } from "./checkModel.js";
import { chooseWeights } from "./chooseWeights.js";
import type { FinetuneRecord } from "./finetune.js";
import { type Flatness, flatness } from "./flatness.js";
import { type GenerateOptions, type GeneratePlan, resolvePlan } from "./plan.js";
import { type AdapterRecord, adapterRecord, type CandidateWeight } from "./record.js";
import { targetProfile } from "./target.js";
import { mixUpdateNorm, writeAdapter } from "./writeAdapter.js";

export type { GenerateOptions } from "./plan.js";

/** Seconds per step of generate. */
export interface GenerateTimings {
  /** Reading and tokenizing the dataset into its profile. */
  profile: number;
  distances: number;
  /** Choosing the weights: loading the model, candidate scoring and fitting, or the paper's weighting. */
  select: number;
  /** select fit and loss: its parts (mixing candidates and converting them happen inside score and fit). */
  selection?: { load: number; score: number; fit: number; mixCandidates: number; convert: number };
  mix: number;
  /** 0 when it did not run. */
  finetune: number;
}

export interface GenerateResult {
  out: string;
  /** Every candidate, by decreasing weight (ties by id). */
  weights: CandidateWeight[];
  mix: MixResult<AdapterRecord>;
  target: { records: number; datasetRecords: number | null; tokens: number; kind: "dataset" | "profile" };
  synthetic: boolean;
  /** select fit and loss: every candidate with its loss, and the choice. */
  selection?: LossSelection;
  /** The fine-tuning of the mix on the train records, when it ran. */
  finetune?: FinetuneRecord;
  /** How spread the weights are, and whether the mixture is likely to act like the base model. */
  flatness: Flatness;
  /** What the user should know about how the adapter was chosen (fallbacks, short datasets). */
  notes: string[];
  timings: GenerateTimings;
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

/** The steps: plan → bank → target → distances → weights → record → write. */
async function generateWithBank(bank: Bank, options: GenerateOptions): Promise<GenerateResult> {
  const { signal, progress } = options;
  const plan = await resolvePlan(options);
  const { entries, profiles, mlp } = await prepareBank(bank, plan, signal, progress);
  const clock = new StepClock();
  const bankNotes = [bank.baseModelMissing()].filter((n): n is string => n !== null);
  const { profile, source, train, warning } = await clock.time("profile", () =>
    readTarget(bank, plan, signal, progress),
  );
  const targetNotes = warning === null ? [] : [warning];
  const distances = await clock.time("distances", () =>
    distancesToCandidates(profile, profiles, plan.metric, { mmd: plan.mmd, signal, progress }),
  );
  const choice = await clock.time("select", () =>
    chooseWeights(plan, {
      bankTokenizer: bank.tokenizer,
      entries,
      distances,
      source,
      train,
      mlp,
      signal,
      progress,
      ...(options.onEstimate ? { onEstimate: options.onEstimate } : {}),
    }),
  );
  const weights = plan.prune ? pruneWeights(choice.weights, plan.prune) : choice.weights;
  const rows = weightRows(entries, weights, distances, plan.prune ? choice.weights : null);
  const synthetic = entries.filter((e) => isSyntheticAdapter(e.adapterPath as string)).length;
  const record = adapterRecord({
    plan,
    bank: { dir: bank.dir, tokenizer: bank.tokenizerName, createdBy: bank.createdBy },
    target: source,
    adapters: entries
      .filter((_, j) => (weights[j] as number) !== 0)
      .map((e) => ({ id: e.id, path: e.adapterPath as string, hash: e.adapterHash })),
    weights: rows,
    selection: choice.selection,
    mlpKey: mlp
      ? mlpKey(plan.metric, plan.mlp.hidden, plan.mlp.seed, gramKey(adapterHashes(entries)))
      : undefined,
    synthetic: { count: synthetic, of: entries.length },
  });
  // Measured before the output is written: writing it is the commit point, after which an
  // interrupt no longer stops the run.
  const spread = flatness(weights, await mixUpdateNorm(entries, weights, signal));
  const written = await clock.time("mix", () =>
    writeAdapter(plan, { entries, weights, record, baseModel: bank.baseModel, train, signal, progress }),
  );
  const finetuneSeconds = written.finetune?.seconds ?? 0;
  return {
    out: written.mix.out,
    weights: rows,
    mix: written.mix,
    target: {
      records: source.records,
      datasetRecords: source.datasetRecords,
      tokens: source.tokens,
      kind: source.kind,
    },
    synthetic: synthetic > 0,
    ...(choice.selection ? { selection: choice.selection } : {}),
    ...(written.finetune ? { finetune: written.finetune } : {}),
    // The warning is about a mix that acts like the base model; a fine-tuned one was fitted to the data.
    flatness: written.finetune ? { ...spread, warning: null } : spread,
    notes: [...bankNotes, ...plan.notes, ...targetNotes, ...choice.notes, ...written.notes],
    timings: {
      ...clock.seconds,
      ...(choice.selection ? { selection: selectionTimings(clock.seconds.select, choice.selection) } : {}),
      mix: clock.seconds.mix - finetuneSeconds,
      finetune: finetuneSeconds,
    },
  };
}

/** The target's profile and first train records; a profile.json cannot be fine-tuned on when that was asked. */
async function readTarget(
  bank: Bank,
  plan: GeneratePlan,
  signal: AbortSignal | undefined,
  progress: ProgressSink | undefined,
): Promise<Awaited<ReturnType<typeof targetProfile>>> {
  const { dataOptions, side, keep, threads } = plan;
  const target = await targetProfile(bank, plan.data, { dataOptions, side, keep, threads, signal, progress });
  throwIfAborted(signal);
  if (plan.finetune > 0 && target.train === null && plan.finetuneAsked) {
    const f = option("finetune");
    throw usageError(
      `${target.source.path}: a profile has no train records to fine-tune on; give the dataset itself, or drop ${f.text}`,
      [f],
    );
  }
  return target;
}

/**
 * The bank's side of the plan: its entries with adapters (unchanged since they were added), their
 * profiles on the plan's side, and the neural weighting's MLP, looked up before any work so that a
 * missing one fails at once.
 */
async function prepareBank(
  bank: Bank,
  plan: GeneratePlan,
  signal: AbortSignal | undefined,
  progress: ProgressSink | undefined,
): Promise<{ entries: BankEntry[]; profiles: Profile[]; mlp: TrainedMlp | undefined }> {
  const entries = bank.entries().filter((e) => e.adapterPath !== null);
  if (entries.length === 0) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: the bank has no adapters to mix (add entries with --adapter)`,
    );
  }
  if (plan.scoring?.info) await checkModelFitsBank(bank, entries, plan.scoring.info);
  await checkAdaptersUnchanged(bank, entries, signal);
  // One-side profiles are a cache over the entries' outputs or inputs: made here when missing, as
  // they take seconds; "both" profiles are the bank's own (SPEC §2) and come from `bank index`.
  if (plan.side !== "both" && entries.some((e) => bank.profile(e.id, plan.side) === undefined)) {
    const made = await indexBank(bank, { side: plan.side, threads: plan.threads, signal, progress });
    if (made.problems.length > 0) throw new LoramixError("BANK", made.problems[0] as string);
  }
  const { profiles } = bankProfiles(bank, plan.side, entries);
  if (plan.select !== "method" || plan.method !== "neural") return { entries, profiles, mlp: undefined };
  const { metric, mlp: m } = plan;
  const mlp = await loadBankMlp(bank, { metric, hidden: m.hidden, seed: m.seed });
  if (!mlp) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: no trained MLP for metric ${metric} (H=${m.hidden}, seed ${m.seed}) for the bank's current adapters; run \`loramix train-mlp ${bank.dir} --metric ${metric}\` first`,
    );
  }
  return { entries, profiles, mlp };
}

/** The parts of the select step: what is not scoring or fitting is opening the model. */
function selectionTimings(select: number, s: LossSelection): NonNullable<GenerateTimings["selection"]> {
  const fit = s.fit?.seconds ?? 0;
  return {
    load: Math.max(0, select - s.seconds - fit),
    score: s.seconds,
    fit,
    mixCandidates: s.overhead.mix,
    convert: s.overhead.convert,
  };
}

function adapterHashes(entries: readonly BankEntry[]): string[] {
  return entries.map((e) => e.adapterHash).filter((h): h is string => h !== null);
}

/** Every candidate's weight and distance, by decreasing weight (ties by id); `raw` before pruning. */
function weightRows(
  entries: readonly BankEntry[],
  weights: Float64Array,
  distances: Float64Array,
  raw: Float64Array | null,
): CandidateWeight[] {
  const rows: CandidateWeight[] = entries.map((e, j) => ({
    id: e.id,
    weight: weights[j] as number,
    distance: distances[j] as number,
    ...(raw ? { rawWeight: raw[j] as number } : {}),
  }));
  return rows.sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Seconds per named step, each measured around its own work. */
class StepClock {
  readonly seconds: Record<"profile" | "distances" | "select" | "mix", number> = {
    profile: 0,
    distances: 0,
    select: 0,
    mix: 0,
  };

  async time<T>(step: keyof StepClock["seconds"], work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.seconds[step] += (performance.now() - started) / 1000;
    }
  }
}
