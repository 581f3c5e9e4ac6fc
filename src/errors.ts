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
  | "MEMORY" // the work does not fit the memory it may use (the CPU trainer's WebAssembly heap)
  | "ABORTED"; // the user interrupted (Ctrl-C)

/**
 * An option named in a message. The library's message spells it as the API does (`` `replace: true` ``);
 * the CLI, which knows its flags, prints `--replace` instead (`cliMessage`).
 */
export interface OptionName {
  text: string;
  flag: string;
}

/** `name` as the library and the CLI spell it; the flag is the kebab-case name, then the value. */
export function option(name: string, value?: string | number | boolean): OptionName {
  const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (value === undefined) return { text: `\`${name}\``, flag };
  if (value === true) return { text: `\`${name}: true\``, flag };
  return { text: `\`${name}: ${JSON.stringify(value)}\``, flag: `${flag} ${value}` };
}

export class LoramixError extends Error {
  readonly code: ErrorCode;
  /** The options the message names, for the CLI to print as flags. */
  readonly options: readonly OptionName[];
  constructor(code: ErrorCode, message: string, extra?: { cause?: unknown; options?: OptionName[] }) {
    super(message, extra?.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "LoramixError";
    this.code = code;
    this.options = extra?.options ?? [];
  }
}

/** The message as the CLI prints it: every option it names as the CLI's flag. */
export function cliMessage(error: LoramixError): string {
  let message = error.message;
  for (const o of error.options) message = message.replaceAll(o.text, o.flag);
  return message;
}

/** A file does not follow its format; the message must name the file and what is wrong. */
export function formatError(file: string, problem: string, cause?: unknown): LoramixError {
  return new LoramixError("FORMAT", `${file}: ${problem}`, { cause });
}

export function inputError(file: string, problem: string, cause?: unknown): LoramixError {
  return new LoramixError("INPUT", `${file}: ${problem}`, { cause });
}

export function usageError(message: string, options?: OptionName[]): LoramixError {
  return new LoramixError("USAGE", message, { options });
}

/** Throws if the signal was aborted, so long loops stop between units of work, never mid-write. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LoramixError("ABORTED", "interrupted");
}
