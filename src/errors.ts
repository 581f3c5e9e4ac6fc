/**
 * One error class for everything a user can cause (bad files, bad options, incompatible banks).
 * The CLI prints `message` as one line and exits non-zero; anything that is not a LoramixError
 * is a bug and is printed with its stack.
 */
export type ErrorCode =
  | "FORMAT" // a file's bytes or JSON do not follow its format
  | "INPUT" // a file or directory is missing, empty or of the wrong kind
  | "LAYOUT" // adapters that should share a layout do not
  | "BANK" // the bank is missing, inconsistent or lacks what the operation needs
  | "TOKENIZER" // tokenizer missing or not the bank's
  | "USAGE" // bad option values
  | "BACKEND" // an inference backend failed
  | "ABORTED"; // the user interrupted (Ctrl-C)

export class LoramixError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LoramixError";
    this.code = code;
  }
}

/** A file does not follow its format; the message must name the file and what is wrong. */
export function formatError(file: string, problem: string, cause?: unknown): LoramixError {
  return new LoramixError("FORMAT", `${file}: ${problem}`, { cause });
}

export function inputError(file: string, problem: string, cause?: unknown): LoramixError {
  return new LoramixError("INPUT", `${file}: ${problem}`, { cause });
}

export function usageError(message: string): LoramixError {
  return new LoramixError("USAGE", message);
}

/** Throws if the signal was aborted, so long loops stop between units of work, never mid-write. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LoramixError("ABORTED", "interrupted");
}
