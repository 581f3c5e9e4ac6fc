import { SingleBar } from "cli-progress";
import type { ProgressEvent, ProgressSink } from "../util/progress.js";

/**
 * Process-wide CLI state: the abort signal that Ctrl-C trips (commands pass it to the library,
 * which stops between units of work and leaves no half-written output), and the progress drawer.
 */
export const interrupt = new AbortController();

/**
 * The signals that interrupt a command as Ctrl-C does (a closed terminal, `kill`, a service
 * manager), with the exit code each leaves: 128 + the signal's number, as shells report it.
 */
export const INTERRUPTS = { SIGINT: 130, SIGHUP: 129, SIGTERM: 143 } as const;

/** The exit code of the signal that interrupted this run (130 when it stopped otherwise). */
export function interruptExitCode(): number {
  return INTERRUPTS[interrupt.signal.reason as keyof typeof INTERRUPTS] ?? INTERRUPTS.SIGINT;
}

/** `--quiet` (any command): no progress and no messages, only results and errors. */
export const outputMode = { quiet: false };

/** Messages for the user go to stderr, so stdout carries only results (tables, JSON, `--out -`). */
export function info(line: string): void {
  if (!outputMode.quiet) process.stderr.write(`${line}\n`);
}

/** A result line (a table row, a score): stdout, so `loramix bank ls | tail` sees the table. */
export function printResult(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** `--json`: the command's result as one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
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
  // Where the plain-line ETA starts counting: a resumed phase starts with work already done.
  let phaseStart = { time: 0, done: 0 };
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  const sink = (e: ProgressEvent) => {
    if (outputMode.quiet) return;
    if (e.phase !== phase) {
      stop();
      phase = e.phase;
      lastLine = 0;
      phaseStart = { time: Date.now(), done: e.done };
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
      info(
        `${e.phase}: ${e.done}/${e.total} ${e.unit ?? ""}${eta(now - phaseStart.time, e.done - phaseStart.done, e.total - e.done)}${e.detail ? ` (${e.detail})` : ""}`,
      );
    }
  };
  return Object.assign(sink, { stop });
}

/** ", ETA 1m 05s" once some work of this phase is done, so a plain log still says how long is left. */
export function eta(elapsedMs: number, done: number, left: number): string {
  if (done <= 0 || left <= 0) return "";
  const seconds = Math.round(((elapsedMs / done) * left) / 1000);
  const m = Math.floor(seconds / 60);
  return `, ETA ${m > 0 ? `${m}m ${String(seconds % 60).padStart(2, "0")}s` : `${seconds}s`}`;
}
