/**
 * Progress of long work, reported by the library and drawn by the CLI (bars on a TTY, plain
 * lines otherwise). Library code never prints.
 */
export interface ProgressEvent {
  /** What is being done, e.g. "tokenize", "distances kl", "mix". */
  phase: string;
  done: number;
  total: number;
  /** Unit of `done`/`total`, e.g. "entries", "tensors", "records". */
  unit?: string;
  /** Extra text for the line, e.g. "612k tokens/s". */
  detail?: string;
}

export type ProgressSink = (event: ProgressEvent) => void;
