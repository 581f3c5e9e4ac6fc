import { formatError } from "../errors.js";
import { recordFromRow } from "./fields.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

export function recordsFromJsonArray(
  file: string,
  json: unknown,
  options: DatasetOptions = {},
): DatasetRecord[] {
  if (!Array.isArray(json))
    throw formatError(file, "expected a JSON array of records or a Super-NI task object");
  return json.map((row, i) => recordFromRow(file, `record ${i}`, row, options));
}
