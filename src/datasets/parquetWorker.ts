import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { serveRequests } from "../util/workers.js";

/** Decodes one Parquet file off the main thread (see readParquetRecords for why). */
serveRequests<string, Record<string, unknown>[]>(async (file) =>
  parquetReadObjects({ file: await asyncBufferFromFile(file), compressors }),
);
