import { restrictMatrix } from "../distances/matrix.js";
import type { ProgressSink } from "../util/progress.js";
import { bankGram, type GramBank, gramKey } from "./gram.js";
import { mlpFromBuffer, mlpToBuffer, type TrainedMlp } from "./mlp.js";
import { trainScalarMlp } from "./trainMlp.js";

/** A pairwise distance matrix over bank entries: row = target, column = candidate, row-major. */
export interface EntryDistances {
  ids: string[];
  values: Float64Array;
}

/** Cache key of a trained MLP: what it was trained for and on. */
export function mlpKey(metric: string, hidden: number, seed: number, gram: string): string {
  return `${metric}:h${hidden}:s${seed}:${gram}`;
}

/**
 * Trains the neural weighting on a bank (SPEC §4) and stores it in the bank's cache (kind "mlp").
 * Rows are the entries with an adapter; `distances` must cover them (it may cover more).
 */
export async function trainBankMlp(
  bank: GramBank,
  distances: EntryDistances,
  {
    metric,
    hidden = 64,
    epochs = 40,
    seed = 0,
    learningRate = 1e-3,
    threads,
    onEpoch,
    signal,
    progress,
  }: {
    metric: string;
    hidden?: number;
    epochs?: number;
    seed?: number;
    learningRate?: number;
    threads?: number;
    onEpoch?: (epoch: number, trainLoss: number) => void;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ mlp: TrainedMlp; key: string }> {
  const gram = await bankGram(bank, { threads, signal, progress });
  const sub = restrictMatrix(distances, gram.ids, `${bank.dir} (${metric})`);
  const mlp = await trainScalarMlp({
    distances: sub,
    gram: gram.entryValues,
    params: gram.params,
    ids: gram.ids,
    metric,
    gramKey: gram.key,
    hidden,
    epochs,
    seed,
    learningRate,
    onEpoch,
    signal,
    progress,
  });
  const key = mlpKey(metric, hidden, seed, gram.key);
  await bank.putCache("mlp", key, mlpToBuffer(mlp));
  return { mlp, key };
}

/** The MLP `trainBankMlp` stored for these settings and the bank's current adapters, if any. */
export async function loadBankMlp(
  bank: GramBank,
  { metric, hidden = 64, seed = 0 }: { metric: string; hidden?: number; seed?: number },
): Promise<TrainedMlp | undefined> {
  const hashes = bank
    .entries()
    .map((e) => e.adapterHash)
    .filter((h): h is string => h !== null);
  const key = mlpKey(metric, hidden, seed, gramKey(hashes));
  const blob = await bank.getCache("mlp", key);
  return blob ? mlpFromBuffer(blob, `${bank.dir} (cache mlp ${key.slice(0, 40)})`) : undefined;
}
