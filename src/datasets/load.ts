import { openDataset } from "./open.js";
import {
  type Dataset,
  type DatasetOptions,
  type DatasetRecord,
  SPLIT_NAMES,
  type SplitName,
} from "./record.js";

export type { Dataset, DatasetFormat, DatasetOptions, DatasetRecord, SplitName } from "./record.js";

/**
 * Reads a whole dataset into memory (`openDataset` says which files and layouts it takes):
 * `records` in file order, or train, valid, test when the file names give the splits. To
 * profile a dataset larger than memory, stream it with `openDataset` instead.
 */
export async function loadDataset(path: string, options: DatasetOptions = {}): Promise<Dataset> {
  const source = await openDataset(path, options);
  const splits: Record<SplitName, DatasetRecord[]> = { train: [], valid: [], test: [] };
  const all: DatasetRecord[] = [];
  for await (const { record, split } of source.records()) {
    splits[split].push(record);
    all.push(record);
  }
  return {
    path: source.path,
    format: source.format,
    name: source.name,
    records: source.splitsFromFiles ? SPLIT_NAMES.flatMap((s) => splits[s]) : all,
    splits,
    metadata: source.metadata,
  };
}
