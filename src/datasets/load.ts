import { isUtf8 } from "node:buffer";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { notUtf8Error, parseJsonLenient } from "./json.js";
import { recordsFromJsonArray } from "./jsonArray.js";
import { readJsonl } from "./jsonl.js";
import { readParquetRecords } from "./parquet.js";
import type { Dataset, DatasetFormat, DatasetOptions, DatasetRecord, SplitName } from "./record.js";
import { SPLIT_NAMES } from "./record.js";
import { parseSniTask, sniRecords } from "./sni.js";
import { hashSplit } from "./split.js";

export type { Dataset, DatasetFormat, DatasetOptions, DatasetRecord, SplitName } from "./record.js";

const DATA_EXTENSIONS = new Set([".jsonl", ".json", ".parquet"]);

/** Split names used by Hugging Face dataset files (`data/train-00000-of-00001.parquet`, `validation.jsonl`). */
const SPLIT_ALIASES: Record<string, SplitName> = {
  train: "train",
  valid: "valid",
  validation: "valid",
  dev: "valid",
  test: "test",
};

interface FileContent {
  format: DatasetFormat;
  records: DatasetRecord[];
  metadata: Record<string, unknown>;
}

async function readDataFile(file: string, options: DatasetOptions): Promise<FileContent> {
  const ext = extname(file).toLowerCase();
  const format = options.format;
  if (format === "parquet" || (!format && ext === ".parquet")) {
    return { format: "parquet", records: await readParquetRecords(file, options), metadata: {} };
  }
  if (format && format !== "json" && format !== "sni" && format !== "jsonl") {
    throw inputError(file, `unknown dataset format "${format}" (expected sni, jsonl, json or parquet)`);
  }
  if (!format && ext !== ".jsonl" && ext !== ".json") {
    throw inputError(file, `unknown dataset file type "${ext}" (expected .jsonl, .json or .parquet)`);
  }
  if (format === "jsonl" || (!format && ext === ".jsonl")) {
    return { format: "jsonl", records: await readJsonl(file, options), metadata: {} };
  }
  // Editors on Windows save UTF-8 with a byte-order mark, which JSON.parse rejects.
  const text = utf8Text(file, await readFile(file)).replace(/^\uFEFF/, "");
  const json = parseJsonLenient(file, text);
  // A top-level object can only be a Super-NI task; arrays are record lists.
  if (format === "sni" || (!format && !Array.isArray(json))) {
    const task = parseSniTask(file, json);
    return { format: "sni", records: sniRecords(task), metadata: task.metadata };
  }
  return { format: "json", records: recordsFromJsonArray(file, json, options), metadata: {} };
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
 * Reads a dataset: a Super-NI task JSON, JSONL, a JSON array, Parquet, or a directory in Hugging
 * Face layout whose file names give the splits. Records without splits of their own (a single
 * file, or a directory with train files only) are split by SPEC §1's hash rule.
 */
export async function loadDataset(path: string, options: DatasetOptions = {}): Promise<Dataset> {
  const abs = resolve(path);
  const info = await stat(abs).catch(() => null);
  if (!info) throw inputError(abs, "no such dataset file or directory");
  if (info.isFile()) {
    const { format, records, metadata } = await readDataFile(abs, options);
    if (records.length === 0) throw formatError(abs, "the dataset has no records");
    return {
      path: abs,
      format,
      name: basename(abs).replace(/\.[^.]+$/, ""),
      records,
      splits: hashSplit(records),
      metadata,
    };
  }
  const files = await dataFilesIn(abs);
  if (files.length === 0) {
    throw inputError(
      abs,
      "no split files (train/valid/validation/dev/test .jsonl, .json or .parquet) in the directory or its data/",
    );
  }
  const own: Record<SplitName, DatasetRecord[]> = { train: [], valid: [], test: [] };
  const formats = new Set<DatasetFormat>();
  let metadata: Record<string, unknown> = {};
  for (const file of files) {
    const content = await readDataFile(file, options);
    formats.add(content.format);
    metadata = { ...metadata, ...content.metadata };
    own[splitFromFileName(file)!].push(...content.records);
  }
  if (formats.size > 1) {
    throw inputError(
      abs,
      `split files of different formats (${[...formats].join(", ")}): keep one format per dataset`,
    );
  }
  const records = SPLIT_NAMES.flatMap((s) => own[s]);
  if (records.length === 0) throw formatError(abs, "the dataset has no records");
  // Train files alone leave nothing to evaluate on, so they are treated as an unsplit dataset.
  const trainOnly = own.valid.length === 0 && own.test.length === 0;
  return {
    path: abs,
    format: [...formats][0]!,
    name: basename(abs),
    records,
    splits: trainOnly ? hashSplit(records) : own,
    metadata,
  };
}
