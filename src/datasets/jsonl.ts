import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { formatError } from "../errors.js";
import { MAX_RECORD_CHARS, recordFromRow } from "./fields.js";
import { notUtf8Error, parseJsonLenient } from "./json.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

const NEWLINE = 0x0a;
/**
 * A line longer than this cannot hold a record loramix takes (a character is at most 6 bytes of a
 * JSON line, as a \uXXXX escape, and the field names add a little), so it is refused while it is
 * read, before it is joined: a 600 MB line would otherwise pass V8's string limit and a 200 MB one
 * exhaust the heap.
 */
export const MAX_LINE_BYTES = 8 * MAX_RECORD_CHARS;

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
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  // The line's bytes are joined and decoded here and dropped on return, before JSON.parse makes a
  // third copy of a long line (a 200 MB line otherwise peaks at ~4.3× its size).
  const lineText = (pieces: Buffer[]): string => {
    const bytes = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
    if (!isUtf8(bytes)) throw notUtf8Error(file, lineNumber);
    return bytes.toString("utf8");
  };
  const parseLine = (pieces: Buffer[]): DatasetRecord | undefined => {
    lineNumber++;
    let text = lineText(pieces);
    pieces.length = 0;
    pendingBytes = 0;
    // Editors on Windows save UTF-8 with a byte-order mark.
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
      pending.push(bytes.subarray(start, at));
      const record = parseLine(pending);
      start = at + 1;
      if (record) yield record;
    }
    if (start < bytes.length) {
      pending.push(bytes.subarray(start));
      pendingBytes += bytes.length - start;
      if (pendingBytes > MAX_LINE_BYTES)
        throw formatError(
          file,
          `line ${lineNumber + 1} is longer than ${MAX_LINE_BYTES / 1024 / 1024} MiB, more than one example may hold`,
        );
    }
  }
  if (pending.length > 0) {
    const record = parseLine(pending);
    if (record) yield record;
  }
}
