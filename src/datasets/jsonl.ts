import { formatError } from "../errors.js";
import { recordFromRow } from "./fields.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

/** One JSON object per line; blank lines skipped; a bad line is reported with its 1-based number. */
export function parseJsonl(file: string, text: string, options: DatasetOptions = {}): DatasetRecord[] {
  const records: DatasetRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (error) {
      throw formatError(file, `line ${i + 1}: invalid JSON (${(error as Error).message})`);
    }
    records.push(recordFromRow(file, `line ${i + 1}`, row, options));
  }
  return records;
}
