import { createHash } from "node:crypto";
import { formatError, throwIfAborted, usageError } from "../errors.js";
import { HistogramCounter, type SparseHistogram } from "../tokenizers/histogram.js";
import { loadTokenizer } from "../tokenizers/load.js";
import { sharedPool } from "../tokenizers/pool.js";
import { filePrefix, type OutFileKind } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";

/** What a profile reads from a dataset record (a `ProfiledRecord` fits). */
export interface ProfiledRecord {
  input: string;
  output: readonly string[];
}

/**
 * What a profile counts of each record: "both" is SPEC §2's input + first output (the paper's);
 * "output" the first output alone, which describes the answers a task wants (its label set and
 * format) rather than the topic of its prompts; "input" the input alone.
 */
export const PROFILE_SIDES = ["both", "output", "input"] as const;
export type ProfileSide = (typeof PROFILE_SIDES)[number];

/** Token histogram of a dataset (SPEC §2): sparse, ids ascending, counts aligned. */
export interface Profile {
  /** The tokenizer's identity (`Tokenizer.name`). */
  tokenizer: string;
  side: ProfileSide;
  vocabSize: number;
  nRecords: number;
  nTokens: number;
  ids: Uint32Array;
  counts: Float64Array;
  /** SHA-256 of the profiled texts (see `profileRecords`): changes whenever the histogram's input does. */
  datasetHash: string;
}

export interface ProfileOptions {
  /** What `loadTokenizer` takes: "mistral" or a tokenizer.json path. */
  tokenizer: string;
  /** Default "both" (SPEC §2). */
  side?: ProfileSide;
  /**
   * Worker threads; 1 (the default) tokenizes on the calling thread. With the chunk cache the
   * calling thread reaches ~3M tokens/s, and on 2 cores shipping texts to workers measured no faster.
   */
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
  position?: ProfilePosition;
}

/** Below this many characters, starting workers costs more than it saves. */
const IN_PROCESS_CHARS = 400_000;
/** Per worker message: large enough that messaging is negligible, small enough for progress and balance. */
const BATCH_CHARS = 200_000;

/**
 * The text profiled for a record: SPEC §2's input + first output (input alone when there is none)
 * for "both", or one side of it.
 */
export function profileText(record: ProfiledRecord, side: ProfileSide = "both"): string {
  const output = record.output[0] ?? "";
  return side === "both" ? record.input + output : side === "output" ? output : record.input;
}

/**
 * Where a stream's reader is, for progress (e.g. megabytes read of the file's): without it,
 * progress counts records, of the array's length when `records` is one.
 */
export type ProfilePosition = () => { done: number; total: number; unit: string };

/**
 * Profile of `records` (the caller passes the train split): each record's `profileText` is
 * tokenized with BOS and without EOS, and the ids are counted. Exact whatever the thread count:
 * counts are integers, summed in float64. `records` may be a stream: it is read once, in batches
 * of ~200k characters, and no record is kept, so memory does not grow with the dataset.
 */
export async function profileRecords(
  records: Iterable<ProfiledRecord> | AsyncIterable<ProfiledRecord>,
  { tokenizer: spec, side = "both", threads = 1, signal, progress, position }: ProfileOptions,
): Promise<Profile> {
  throwIfAborted(signal);
  if (!PROFILE_SIDES.includes(side))
    throw usageError(`unknown profile side "${side}" (use ${PROFILE_SIDES.join(", ")})`);
  const tokenizer = await loadTokenizer(spec);
  const length = Array.isArray(records) ? records.length : undefined;
  const hash = createHash("sha256");
  const total = new Float64Array(tokenizer.vocabSize);
  let nRecords = 0;
  let nTokens = 0;
  let counted = 0;
  const started = performance.now();
  const add = (h: SparseHistogram, nTexts: number) => {
    for (let i = 0; i < h.ids.length; i++) {
      const id = h.ids[i] as number;
      total[id] = (total[id] as number) + (h.counts[i] as number);
    }
    nTokens += h.nTokens;
    counted += nTexts;
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? `${Math.round(nTokens / seconds / 1000)}k tokens/s` : "";
    const at = position?.() ?? { done: counted, total: length ?? counted, unit: "records" };
    progress?.({ phase: "tokenize", ...at, detail: rate });
  };

  const counter = new HistogramCounter(tokenizer);
  const pool = threads > 1 ? sharedPool(threads) : undefined;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  // Batches are held back until IN_PROCESS_CHARS have been seen: a small dataset never starts workers.
  let held: string[][] | null = pool ? [] : null;
  let heldChars = 0;
  const dispatch = async (batch: string[]) => {
    if (!pool) {
      add(counter.count(batch, true), batch.length);
      return;
    }
    const job = pool.count(tokenizer.spec, batch, true, threads).then(
      (h) => add(h, batch.length),
      (error: unknown) => {
        failure ??= error;
      },
    );
    const tracked = job.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    // Two batches per worker: one being counted, one waiting, so no worker idles between messages.
    if (inFlight.size >= 2 * threads) await Promise.race(inFlight);
  };
  const take = async (batch: string[], chars: number) => {
    if (held === null) return dispatch(batch);
    held.push(batch);
    heldChars += chars;
    if (heldChars < IN_PROCESS_CHARS) return;
    const ready = held;
    held = null;
    for (const b of ready) await dispatch(b);
  };

  let batch: string[] = [];
  let size = 0;
  for await (const record of records) {
    throwIfAborted(signal);
    if (failure !== undefined) break;
    const text = profileText(record, side);
    hash.update(`${text.length}:`).update(text);
    nRecords++;
    batch.push(text);
    size += text.length;
    if (size >= BATCH_CHARS) {
      await take(batch, size);
      batch = [];
      size = 0;
    }
  }
  if (batch.length > 0 && failure === undefined) await take(batch, size);
  if (held !== null) for (const b of held) add(counter.count(b, true), b.length);
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  throwIfAborted(signal);

  let nonZero = 0;
  for (let i = 0; i < total.length; i++) if ((total[i] as number) > 0) nonZero++;
  const ids = new Uint32Array(nonZero);
  const counts = new Float64Array(nonZero);
  for (let i = 0, k = 0; i < total.length; i++) {
    const c = total[i] as number;
    if (c > 0) {
      ids[k] = i;
      counts[k++] = c;
    }
  }
  return {
    tokenizer: tokenizer.name,
    side,
    vocabSize: tokenizer.vocabSize,
    nRecords,
    nTokens,
    ids,
    counts,
    datasetHash: hash.digest("hex"),
  };
}

/** JSON form: `{"tokenizer","vocabSize","nRecords","nTokens","counts":{"<id>":count},"datasetHash"}`. */
export interface ProfileJson {
  tokenizer: string;
  /** Absent in profiles written before sides existed: "both". */
  side?: ProfileSide;
  vocabSize: number;
  nRecords: number;
  nTokens: number;
  counts: Record<string, number>;
  datasetHash: string;
}

export function profileToJson(p: Profile): ProfileJson {
  const counts: Record<string, number> = {};
  for (let i = 0; i < p.ids.length; i++) counts[String(p.ids[i])] = p.counts[i] as number;
  return {
    tokenizer: p.tokenizer,
    side: p.side,
    vocabSize: p.vocabSize,
    nRecords: p.nRecords,
    nTokens: p.nTokens,
    counts,
    datasetHash: p.datasetHash,
  };
}

/**
 * `loramix profile --out`: a new path, or a profile loramix wrote, recognised by how
 * `profileToJson`'s output starts (its first keys, in this order).
 */
export const PROFILE_FILE: OutFileKind = {
  what: "a profile",
  written: async (path) =>
    /^\{"tokenizer":"(?:[^"\\]|\\.)*","side":"(?:both|output|input)","vocabSize":\d+,/.test(
      await filePrefix(path, 1024),
    ),
};

/** Reads `profileToJson`'s output back, checking every field; `file` names the source in errors. */
export function profileFromJson(value: unknown, file: string): Profile {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw formatError(file, "a profile must be a JSON object");
  }
  const v = value as Record<string, unknown>;
  const count = (key: string): number => {
    const x = v[key];
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
      throw formatError(
        file,
        `profile field "${key}" must be a non-negative integer, got ${JSON.stringify(x)}`,
      );
    }
    return x;
  };
  const vocabSize = count("vocabSize");
  const nRecords = count("nRecords");
  const nTokens = count("nTokens");
  if (typeof v.tokenizer !== "string" || v.tokenizer === "") {
    throw formatError(file, 'profile field "tokenizer" must be a non-empty string');
  }
  const datasetHash = typeof v.datasetHash === "string" ? v.datasetHash : "";
  const raw = v.counts;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw formatError(file, 'profile field "counts" must be an object of "<id>": count');
  }
  const entries: [number, number][] = [];
  let sum = 0;
  for (const [key, c] of Object.entries(raw)) {
    const id = Number(key);
    if (!/^(0|[1-9]\d*)$/.test(key) || id >= vocabSize) {
      throw formatError(file, `profile count key "${key}" is not a token id below vocabSize ${vocabSize}`);
    }
    if (typeof c !== "number" || !Number.isSafeInteger(c) || c <= 0) {
      throw formatError(
        file,
        `profile count for id ${key} must be a positive integer, got ${JSON.stringify(c)}`,
      );
    }
    entries.push([id, c]);
    sum += c;
  }
  if (sum !== nTokens) throw formatError(file, `profile counts sum to ${sum}, but nTokens is ${nTokens}`);
  entries.sort((a, b) => a[0] - b[0]);
  const side = v.side ?? "both";
  if (!PROFILE_SIDES.includes(side as ProfileSide)) {
    throw formatError(
      file,
      `profile field "side" must be one of ${PROFILE_SIDES.join(", ")}, got ${JSON.stringify(v.side)}`,
    );
  }
  return {
    tokenizer: v.tokenizer,
    side: side as ProfileSide,
    vocabSize,
    nRecords,
    nTokens,
    ids: Uint32Array.from(entries, (e) => e[0]),
    counts: Float64Array.from(entries, (e) => e[1]),
    datasetHash,
  };
}

/** The histogram as a dense array of length `vocabSize` (written into `out` when given). */
export function denseCounts(p: Profile, out?: Float64Array): Float64Array {
  if (out !== undefined && out.length !== p.vocabSize) {
    throw new RangeError(
      `denseCounts: out has length ${out.length}, the profile's vocabulary ${p.vocabSize}`,
    );
  }
  const dense = out ?? new Float64Array(p.vocabSize);
  dense.fill(0);
  for (let i = 0; i < p.ids.length; i++) dense[p.ids[i] as number] = p.counts[i] as number;
  return dense;
}
