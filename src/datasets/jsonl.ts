import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { recordFromRow } from "./fields.js";
import { notUtf8Error, parseJsonLenient } from "./json.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

const NEWLINE = 0x0a;

/**
 * One JSON object per line; blank lines skipped; a bad line is reported with its 1-based number.
 * Streamed in 1 MB chunks and yielded record by record: the file is never one string (V8 cannot
 * hold one above ~512 MB), and a consumer that does not keep the records holds one chunk and one
 * line. `onBytes` hears how many bytes each chunk added, for progress.
 */
export async function* jsonlRecords(
  file: string,
  options: DatasetOptions = {},
  onBytes?: (bytes: number) => void,
): AsyncGenerator<DatasetRecord> {
  let lineNumber = 0;
  // The pieces of a line that spans chunks, joined once at its end (a 200 MB line is not copied per chunk).
  let pending: Buffer[] = [];
  const parseLine = (bytes: Buffer): DatasetRecord | undefined => {
    lineNumber++;
    if (!isUtf8(bytes)) throw notUtf8Error(file, lineNumber);
    // Editors on Windows save UTF-8 with a byte-order mark.
    let text = bytes.toString("utf8");
    if (lineNumber === 1) text = text.replace(/^\uFEFF/, "");
    const line = text.trim();
    if (line === "") return undefined;
    const row = parseJsonLenient(file, line, `line ${lineNumber}`);
    return recordFromRow(file, `line ${lineNumber}`, row, options);
  };
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const bytes = chunk as Buffer;
    onBytes?.(bytes.length);
    let start = 0;
    for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, start)) {
      const piece = bytes.subarray(start, at);
      const record = parseLine(pending.length === 0 ? piece : Buffer.concat([...pending, piece]));
      pending = [];
      start = at + 1;
      if (record) yield record;
    }
    if (start < bytes.length) pending.push(bytes.subarray(start));
  }
  if (pending.length > 0) {
    const record = parseLine(Buffer.concat(pending));
    if (record) yield record;
  }
}
