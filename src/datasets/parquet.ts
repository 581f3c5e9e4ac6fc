import { stat } from "node:fs/promises";
import { formatError } from "../errors.js";
import { startWorker, WorkerChannel } from "../util/workers.js";
import { recordFromRow } from "./fields.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

/**
 * A Parquet file's rows. hyparquet runs in a worker thread with a time limit: some corrupt pages
 * send it into an endless loop that no timer on its own thread could stop, so the thread is
 * stopped instead and the file refused.
 */
export async function readParquetRecords(
  file: string,
  options: DatasetOptions = {},
): Promise<DatasetRecord[]> {
  const { size } = await stat(file);
  const limitSeconds = Math.ceil(PARQUET_SECONDS + size / PARQUET_BYTES_PER_SECOND);
  const channel = new WorkerChannel<string, Record<string, unknown>[]>(
    startWorker(new URL("./parquetWorker.js", import.meta.url)),
  );
  let timer: NodeJS.Timeout | undefined;
  let rows: Record<string, unknown>[];
  try {
    rows = await Promise.race([
      channel.request(file),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ParquetTimeout(limitSeconds)), limitSeconds * 1000);
      }),
    ]);
  } catch (error) {
    const e = error as Error;
    // hyparquet's own errors say what is wrong; a TypeError or RangeError is corrupt data tripping
    // the reader, whose text ("Offset is outside the bounds of the DataView") means nothing here.
    const text =
      e instanceof ParquetTimeout
        ? `corrupt Parquet file: decoding did not finish (${e.message})`
        : e.name === "TypeError" || e.name === "RangeError"
          ? "corrupt Parquet file (its metadata or pages do not decode)"
          : `cannot read Parquet (${String(e.message).replace(/\s+/g, " ")})`;
    throw formatError(file, text, error);
  } finally {
    clearTimeout(timer);
    await channel.terminate();
  }
  return rows.map((row, i) => recordFromRow(file, `row ${i}`, normalizeRow(row), options));
}

class ParquetTimeout extends Error {
  constructor(seconds: number) {
    super(`no result after ${seconds} s`);
  }
}

/** The time limit: a fixed allowance plus a rate far below hyparquet's on this machine. */
const PARQUET_SECONDS = 5;
const PARQUET_BYTES_PER_SECOND = 2 * 1024 * 1024;

/** Parquet list columns arrive as arrays; BigInt ids as bigint. */
function normalizeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === "bigint" ? v.toString() : v;
  return out;
}
