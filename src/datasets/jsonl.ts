import { recordFromRow } from "./fields.js";
import { parseJsonLenient } from "./json.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

/** One JSON object per line; blank lines skipped; a bad line is reported with its 1-based number. */
export function parseJsonl(file: string, text: string, options: DatasetOptions = {}): DatasetRecord[] {
  const records: DatasetRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    const row = parseJsonLenient(file, line, `line ${i + 1}`);
    records.push(recordFromRow(file, `line ${i + 1}`, row, options));
  }
  return records;
}
