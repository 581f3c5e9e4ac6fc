import { stat } from "node:fs/promises";
import { formatError } from "../errors.js";
import { startWorker } from "../util/workers.js";
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
  const worker = startWorker(new URL("./parquetWorker.js", import.meta.url), { workerData: { file } });
  let timer: NodeJS.Timeout | undefined;
  let reply: ParquetReply;
  try {
    reply = await new Promise<ParquetReply>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the Parquet reader stopped (exit code ${code})`)));
      timer = setTimeout(
        () => resolve({ error: { name: "Timeout", message: `no result after ${limitSeconds} s` } }),
        limitSeconds * 1000,
      );
    });
  } catch (error) {
    throw formatError(file, `cannot read Parquet (${(error as Error).message})`, error);
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
  if ("error" in reply) {
    const { name, message } = reply.error;
    // hyparquet's own errors say what is wrong; a TypeError or RangeError is corrupt data tripping
    // the reader, whose text ("Offset is outside the bounds of the DataView") means nothing here.
    const text =
      name === "Timeout"
        ? `corrupt Parquet file: decoding did not finish (${message})`
        : name === "TypeError" || name === "RangeError"
          ? "corrupt Parquet file (its metadata or pages do not decode)"
          : `cannot read Parquet (${message.replace(/\s+/g, " ")})`;
    throw formatError(file, text);
  }
  return reply.rows.map((row, i) => recordFromRow(file, `row ${i}`, normalizeRow(row), options));
}

type ParquetReply = { rows: Record<string, unknown>[] } | { error: { name: string; message: string } };

/** The time limit: a fixed allowance plus a rate far below hyparquet's on this machine. */
const PARQUET_SECONDS = 5;
const PARQUET_BYTES_PER_SECOND = 2 * 1024 * 1024;

/** Parquet list columns arrive as arrays; BigInt ids as bigint. */
function normalizeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === "bigint" ? v.toString() : v;
  return out;
}
