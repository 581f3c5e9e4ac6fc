/** `loramix/bank`: the bank: a SQLite store of datasets, adapters, profiles and caches, and the commands that fill and check it. */
export { type AddEntryOptions, addEntry } from "./add.js";
export { importLol, type LolImportResult } from "./importLol.js";
export { type ImportOptions, type ImportResult, importSni } from "./importSni.js";
export { type IndexResult, indexBank } from "./indexBank.js";
export { type EntrySummary, listEntries } from "./list.js";
export { SCHEMA_VERSION } from "./schema.js";
export { Bank, type BankEntry, initBank, openBank, type ProfileSummary } from "./store.js";
export { type VerifyProblem, type VerifyProblemKind, type VerifyReport, verifyBank } from "./verify.js";
