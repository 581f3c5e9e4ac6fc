/** loramix library API: everything the CLI does, importable. */
export { type ErrorCode, LoramixError } from "./errors.js";
export type { ProgressEvent, ProgressSink } from "./util/progress.js";
