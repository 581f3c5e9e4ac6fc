import { SingleBar } from "cli-progress";
import type { ProgressEvent, ProgressSink } from "../util/progress.js";

/**
 * Process-wide CLI state: the abort signal that Ctrl-C trips (commands pass it to the library,
 * which stops between units of work and leaves no half-written output), and the progress drawer.
 */
export const interrupt = new AbortController();

/** Lines for the user go to stderr, so stdout stays clean for data (`--out -`, JSON). */
export function info(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * A progress sink: a bar with counts and ETA on a TTY, otherwise a plain line at most every
 * few seconds (and at the end of each phase).
 */
export function createProgress(): ProgressSink & { stop(): void } {
  const tty = process.stderr.isTTY === true;
  let bar: SingleBar | undefined;
  let phase = "";
  let lastLine = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  const sink = (e: ProgressEvent) => {
    if (e.phase !== phase) {
      stop();
      phase = e.phase;
      lastLine = 0;
    }
    if (tty) {
      if (!bar) {
        bar = new SingleBar(
          {
            format: `${e.phase} [{bar}] {value}/{total} ${e.unit ?? ""} | ETA {eta_formatted} {detail}`,
            stream: process.stderr,
            hideCursor: true,
            etaBuffer: 50,
          },
          undefined,
        );
        bar.start(e.total, e.done, { detail: e.detail ?? "" });
      }
      bar.setTotal(e.total);
      bar.update(e.done, { detail: e.detail ?? "" });
      if (e.done >= e.total) stop();
      return;
    }
    const now = Date.now();
    if (e.done >= e.total || now - lastLine > 5000) {
      lastLine = now;
      info(`${e.phase}: ${e.done}/${e.total} ${e.unit ?? ""}${e.detail ? ` (${e.detail})` : ""}`);
    }
  };
  return Object.assign(sink, { stop });
}
