import { formatError } from "../errors.js";
import { jsonKind } from "../util/jsonKind.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

/**
 * The most characters one record may hold (input plus outputs). Instruction data is at most a few
 * hundred thousand characters per example (Mistral-7B's 32k-token context is ~130k). Tokenizing one
 * text with @huggingface/tokenizers peaks at ~400 bytes per character (4 Mi characters: 1.6 GB,
 * 78 s; 16 Mi exhausted the heap after 277 s), so a longer record is refused before it is tokenized.
 */
export const MAX_RECORD_CHARS = 4 * 1024 * 1024;

/**
 * Turns one row (JSONL line, JSON array element, Parquet row) into a record with the configured
 * field names; `where` names the line or row in messages. A string output is a one-element list.
 */
export function recordFromRow(
  file: string,
  where: string,
  row: unknown,
  options: DatasetOptions,
): DatasetRecord {
  const { inputField = "input", outputField = "output", idField = "id" } = options;
  if (typeof row !== "object" || row === null || Array.isArray(row)) {
    throw formatError(file, `${where}: expected an object, found ${jsonKind(row)}`);
  }
  const r = row as Record<string, unknown>;
  const input = r[inputField];
  if (input === undefined) throw formatError(file, `${where}: missing field "${inputField}"`);
  if (typeof input !== "string")
    throw formatError(file, `${where}: field "${inputField}" is ${jsonKind(input)}, expected a string`);
  const raw = r[outputField];
  if (raw === undefined) throw formatError(file, `${where}: missing field "${outputField}"`);
  let output: string[];
  if (typeof raw === "string") output = [raw];
  else if (Array.isArray(raw) && raw.every((o) => typeof o === "string")) output = raw;
  else
    throw formatError(
      file,
      `${where}: field "${outputField}" is ${jsonKind(raw)}, expected a string or a list of strings`,
    );
  // Profiles use output[0] and evaluation needs a reference: a record without one is unusable.
  if (output.length === 0) throw formatError(file, `${where}: field "${outputField}" is an empty list`);
  const chars = output.reduce((n, o) => n + o.length, input.length);
  if (chars > MAX_RECORD_CHARS)
    throw formatError(
      file,
      `${where}: the record has ${chars.toLocaleString("en-US")} characters, more than the ${MAX_RECORD_CHARS.toLocaleString("en-US")} one example may hold`,
    );
  const record: DatasetRecord = { input, output };
  const id = r[idField];
  if (typeof id === "string" || typeof id === "number" || typeof id === "bigint") record.id = String(id);
  else if (id !== undefined && id !== null)
    throw formatError(file, `${where}: field "${idField}" is ${jsonKind(id)}, expected a string or a number`);
  return record;
}
