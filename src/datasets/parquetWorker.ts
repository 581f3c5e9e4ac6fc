import { parentPort, workerData } from "node:worker_threads";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";

/** Decodes one Parquet file off the main thread (see readParquetRecords for why). */
const { file } = workerData as { file: string };
try {
  const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors });
  parentPort?.postMessage({ rows });
} catch (error) {
  const e = error as Error;
  // The class tells hyparquet's own errors from corrupt data tripping it (TypeError, RangeError).
  parentPort?.postMessage({ error: { name: e?.name ?? "Error", message: String(e?.message ?? error) } });
}
