/** `loramix/datasets`: dataset readers (JSONL, JSON, Parquet, Super-NaturalInstructions) and the seeded train/valid/test split. */
export {
  type Dataset,
  type DatasetFormat,
  type DatasetOptions,
  type DatasetRecord,
  loadDataset,
  type SplitName,
} from "./load.js";
export { type DatasetSource, openDataset, type SplitRecord } from "./open.js";
export { SPLIT_NAMES } from "./record.js";
export { parseSniTask, type SniTask, sniPrompt, sniRecords } from "./sni.js";
export { hashSplit, splitOf } from "./split.js";
