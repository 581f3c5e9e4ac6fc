import { readdir, readFile, stat } from "node:fs/promises";
import { basename, extname, join, relative, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { parseJsonLenient } from "./json.js";
import { recordsFromJsonArray } from "./jsonArray.js";
import { parseJsonl } from "./jsonl.js";
import { readParquetRecords } from "./parquet.js";
import type { Dataset, DatasetFormat, DatasetOptions, DatasetRecord, SplitName } from "./record.js";
import { SPLIT_NAMES } from "./record.js";
import { isSniTask, parseSniTask, sniRecords } from "./sni.js";
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
  const text = await readFile(file, "utf8");
  if (format === "jsonl" || (!format && ext === ".jsonl")) {
    return { format: "jsonl", records: parseJsonl(file, text, options), metadata: {} };
  }
  if (format && format !== "json" && format !== "sni") throw inputError(file, `unknown dataset format "${format}"`);
  if (!format && ext !== ".json") {
    throw inputError(file, `unknown dataset file type "${ext}" (expected .jsonl, .json or .parquet)`);
  }
  const json = parseJsonLenient(file, text);
  if (format === "sni" || (!format && isSniTask(json))) {
    const task = parseSniTask(file, json);
    return { format: "sni", records: sniRecords(task), metadata: task.metadata };
  }
  return { format: "json", records: recordsFromJsonArray(file, json, options), metadata: {} };
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
      const isFile = e.isFile() || (e.isSymbolicLink() && (await stat(join(sub, e.name)).catch(() => null))?.isFile());
      if (isFile) found.push(join(sub, e.name));
    }
  }
  return found.sort();
}

/**
 * Reads a dataset: a Super-NI task JSON, JSONL, a JSON array, Parquet, or a directory in Hugging
 * Face layout whose file names give the splits. Records without splits of their own are split
 * by SPEC §1's hash rule.
 */
export async function loadDataset(path: string, options: DatasetOptions = {}): Promise<Dataset> {
  const abs = resolve(path);
  const info = await stat(abs).catch(() => null);
  if (!info) throw inputError(abs, "no such dataset file or directory");
  if (info.isFile()) {
    const { format, records, metadata } = await readDataFile(abs, options);
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
    throw inputError(abs, "no split files (train/valid/validation/test .jsonl, .json or .parquet) in the directory or its data/");
  }
  const splits: Record<SplitName, DatasetRecord[]> = { train: [], valid: [], test: [] };
  let format: DatasetFormat = "jsonl";
  let metadata: Record<string, unknown> = {};
  for (const file of files) {
    const content = await readDataFile(file, options);
    format = content.format;
    metadata = { ...metadata, ...content.metadata };
    splits[splitFromFileName(file)!].push(...content.records);
  }
  const records = SPLIT_NAMES.flatMap((s) => splits[s]);
  if (records.length === 0) throw formatError(relative(process.cwd(), abs) || abs, "the dataset has no records");
  return { path: abs, format, name: basename(abs), records, splits, metadata };
}
