/** What every dataset reader produces (SPEC §1). */
export interface DatasetRecord {
  id?: string;
  input: string;
  output: string[];
}

export type SplitName = "train" | "valid" | "test";
export const SPLIT_NAMES: readonly SplitName[] = ["train", "valid", "test"];

export type DatasetFormat = "sni" | "jsonl" | "json" | "parquet";

export interface Dataset {
  path: string;
  format: DatasetFormat;
  name: string;
  /** All records, in file order. */
  records: DatasetRecord[];
  /** The dataset's own splits, or the SPEC §1 hash split when it has none. */
  splits: Record<SplitName, DatasetRecord[]>;
  /** e.g. { categories: [...] } for Super-NI. */
  metadata: Record<string, unknown>;
}

export interface DatasetOptions {
  format?: DatasetFormat;
  inputField?: string;
  outputField?: string;
  idField?: string;
}
