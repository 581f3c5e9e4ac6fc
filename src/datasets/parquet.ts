import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { formatError } from "../errors.js";
import { recordFromRow } from "./fields.js";
import type { DatasetOptions, DatasetRecord } from "./record.js";

export async function readParquetRecords(
  file: string,
  options: DatasetOptions = {},
): Promise<DatasetRecord[]> {
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors });
  } catch (error) {
    throw formatError(file, `cannot read Parquet (${(error as Error).message})`, error);
  }
  return rows.map((row, i) => recordFromRow(file, `row ${i}`, normalizeRow(row), options));
}

/** Parquet list columns arrive as arrays; BigInt ids as bigint. */
function normalizeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === "bigint" ? v.toString() : v;
  return out;
}
