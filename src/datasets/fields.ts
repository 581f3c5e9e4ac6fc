import { formatError } from "../errors.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

/** Turns one row object into a record with the configured field names; `where` names the line/row. */
export function recordFromRow(file: string, where: string, row: unknown, options: DatasetOptions): DatasetRecord {
  const { inputField = "input", outputField = "output", idField = "id" } = options;
  if (typeof row !== "object" || row === null || Array.isArray(row)) {
    throw formatError(file, `${where}: not a JSON object`);
  }
  const r = row as Record<string, unknown>;
  const input = r[inputField];
  if (typeof input !== "string") throw formatError(file, `${where}: field "${inputField}" is missing or not a string`);
  const raw = r[outputField];
  let output: string[];
  if (typeof raw === "string") output = [raw];
  else if (Array.isArray(raw) && raw.every((o) => typeof o === "string")) output = raw;
  else throw formatError(file, `${where}: field "${outputField}" is missing or not a string or list of strings`);
  const id = r[idField];
  const record: DatasetRecord = { input, output };
  if (typeof id === "string" || typeof id === "number") record.id = String(id);
  return record;
}
