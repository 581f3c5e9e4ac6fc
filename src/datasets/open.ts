import { isUtf8 } from "node:buffer";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { formatError, inputError, throwIfAborted } from "../errors.js";
import { notUtf8Error, parseJsonLenient } from "./json.js";
import { recordsFromJsonArray } from "./jsonArray.js";
import { jsonlRecords } from "./jsonl.js";
import { readParquetRecords } from "./parquet.js";
import type { DatasetFormat, DatasetOptions, DatasetRecord, SplitName } from "./record.js";
import { parseSniTask, sniRecords } from "./sni.js";
import { splitOf } from "./split.js";

const DATA_EXTENSIONS = new Set([".jsonl", ".json", ".parquet"]);

/** Split names used by Hugging Face dataset files (`data/train-00000-of-00001.parquet`, `validation.jsonl`). */
const SPLIT_ALIASES: Record<string, SplitName> = {
  train: "train",
  valid: "valid",
  validation: "valid",
  dev: "valid",
  test: "test",
};

/** A record and the split it belongs to. */
export interface SplitRecord {
  record: DatasetRecord;
  split: SplitName;
}

/**
 * A dataset opened for reading: its kind and metadata are known, its records are read by
 * `records()`. JSONL is streamed from disk on every call, so a dataset larger than memory can be
 * profiled; Super-NI, JSON arrays and Parquet are single documents, read when the dataset is opened.
 */
export interface DatasetSource {
  path: string;
  format: DatasetFormat;
  name: string;
  /** e.g. { categories: [...] } for Super-NI. */
  metadata: Record<string, unknown>;
  /** Bytes of the data files, and of them read by the `records()` under way: progress on a stream. */
  bytes: number;
  readonly bytesRead: number;
  /** The file names give the splits (a directory with valid or test files); else the hash rule does. */
  splitsFromFiles: boolean;
  /**
   * The records in file order with their split: the files' own splits, or SPEC §1's hash split
   * when the dataset has none. Throws when the dataset turns out to have no records.
   */
  records(signal?: AbortSignal): AsyncGenerator<SplitRecord>;
}

/** One data file: read at open (a document) or streamed (JSONL). */
interface DataPart {
  file: string;
  format: DatasetFormat;
  bytes: number;
  /** The file's split from its name; undefined when the hash rule decides. */
  split: SplitName | undefined;
  records: DatasetRecord[] | null;
  metadata: Record<string, unknown>;
}

async function openDataFile(file: string, options: DatasetOptions): Promise<DataPart> {
  const ext = extname(file).toLowerCase();
  const format = options.format;
  const { size: bytes } = await stat(file);
  const part = (format: DatasetFormat, records: DatasetRecord[] | null, metadata = {}): DataPart => ({
    file,
    format,
    bytes,
    split: undefined,
    records,
    metadata,
  });
  if (format === "parquet" || (!format && ext === ".parquet")) {
    return part("parquet", await readParquetRecords(file, options));
  }
  if (format && format !== "json" && format !== "sni" && format !== "jsonl") {
    throw inputError(file, `unknown dataset format "${format}" (expected sni, jsonl, json or parquet)`);
  }
  if (!format && ext !== ".jsonl" && ext !== ".json") {
    throw inputError(file, `unknown dataset file type "${ext}" (expected .jsonl, .json or .parquet)`);
  }
  if (format === "jsonl" || (!format && ext === ".jsonl")) return part("jsonl", null);
  // Editors on Windows save UTF-8 with a byte-order mark, which JSON.parse rejects.
  const text = utf8Text(file, await readFile(file)).replace(/^\uFEFF/, "");
  const json = parseJsonLenient(file, text);
  // A top-level object can only be a Super-NI task; arrays are record lists.
  if (format === "sni" || (!format && !Array.isArray(json))) {
    const task = parseSniTask(file, json);
    return part("sni", sniRecords(task), task.metadata);
  }
  return part("json", recordsFromJsonArray(file, json, options));
}

/** The file's text, refusing bytes that are not UTF-8. */
function utf8Text(file: string, bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString("utf8");
  const text = bytes.toString("utf8");
  const at = text.indexOf("\uFFFD");
  const line = text.slice(0, Math.max(0, at)).split("\n").length;
  throw notUtf8Error(file, line);
}

/** The split a Hugging Face data file belongs to, from its name (`train-00000-of-00001.parquet`). */
function splitFromFileName(file: string): SplitName | undefined {
  const stem = basename(file).replace(/\.[^.]+$/, "");
  const head = stem.split(/[-_.]/)[0]!.toLowerCase();
  return SPLIT_ALIASES[head];
}

async function dataFilesIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const sub of [dir, join(dir, "data")]) {
    const entries = await readdir(sub, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!DATA_EXTENSIONS.has(extname(e.name).toLowerCase()) || !splitFromFileName(e.name)) continue;
      // Hugging Face cache snapshots hold symlinks to blobs: follow them.
      const isFile =
        e.isFile() || (e.isSymbolicLink() && (await stat(join(sub, e.name)).catch(() => null))?.isFile());
      if (isFile) found.push(join(sub, e.name));
    }
  }
  return found.sort();
}

/**
 * Opens a dataset: a Super-NI task JSON, JSONL, a JSON array, Parquet, or a directory in Hugging
 * Face layout whose file names give the splits. Records without splits of their own (a single
 * file, or a directory with train files only) are split by SPEC §1's hash rule, the index
 * running over the files in name order.
 */
export async function openDataset(path: string, options: DatasetOptions = {}): Promise<DatasetSource> {
  const abs = resolve(path);
  const info = await stat(abs).catch(() => null);
  if (!info) throw inputError(abs, "no such dataset file or directory");
  let parts: DataPart[];
  if (info.isFile()) parts = [await openDataFile(abs, options)];
  else {
    const files = await dataFilesIn(abs);
    if (files.length === 0) {
      throw inputError(
        abs,
        "no split files (train/valid/validation/dev/test .jsonl, .json or .parquet) in the directory or its data/",
      );
    }
    // Train files alone leave nothing to evaluate on, so they are treated as an unsplit dataset.
    const trainOnly = files.every((f) => splitFromFileName(f) === "train");
    parts = [];
    for (const file of files) {
      const part = await openDataFile(file, options);
      part.split = trainOnly ? undefined : splitFromFileName(file);
      parts.push(part);
    }
    const formats = new Set(parts.map((p) => p.format));
    if (formats.size > 1) {
      throw inputError(
        abs,
        `split files of different formats (${[...formats].join(", ")}): keep one format per dataset`,
      );
    }
  }
  let bytesRead = 0;
  return {
    path: abs,
    format: parts[0]!.format,
    name: info.isFile() ? basename(abs).replace(/\.[^.]+$/, "") : basename(abs),
    metadata: Object.assign({}, ...parts.map((p) => p.metadata)),
    bytes: parts.reduce((sum, p) => sum + p.bytes, 0),
    splitsFromFiles: parts.some((p) => p.split !== undefined),
    get bytesRead() {
      return bytesRead;
    },
    async *records(signal) {
      bytesRead = 0;
      let index = 0;
      let done = 0;
      for (const part of parts) {
        const inMemory = part.records;
        const records = inMemory ?? jsonlRecords(part.file, options, (n) => (bytesRead += n));
        let i = 0;
        for await (const record of records) {
          throwIfAborted(signal);
          // A document was read at open: its bytes count as its records are handed out.
          if (inMemory) bytesRead = done + Math.round((part.bytes * ++i) / inMemory.length);
          yield { record, split: part.split ?? splitOf(record.id, index) };
          index++;
        }
        done += part.bytes;
        bytesRead = done;
      }
      if (index === 0) throw formatError(abs, "the dataset has no records");
    },
  };
}
