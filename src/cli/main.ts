#!/usr/bin/env node
import { type ArgsDef, type CommandDef, renderUsage, runCommand, runMain } from "citty";
import { cliMessage, LoramixError } from "../errors.js";
import { removeTempsSync } from "../util/scratch.js";
import { sweepScratch } from "../util/sweep.js";
import { INTERRUPTS, info, interrupt, interruptExitCode, outputMode } from "./context.js";
import { main } from "./program.js";
import { checkArgs } from "./strictArgs.js";

async function run(): Promise<void> {
  let rawArgs = process.argv.slice(2);
  // `loramix help [command]` is `loramix [command] --help`.
  if (rawArgs[0] === "help") rawArgs = [...rawArgs.slice(1), "--help"];
  const verbose = rawArgs.includes("--verbose");
  outputMode.quiet = rawArgs.includes("--quiet");
  if (rawArgs.length === 0 || rawArgs.includes("--help") || rawArgs.includes("-h")) {
    await runMain(main, { rawArgs: rawArgs.length === 0 ? ["--help"] : rawArgs, showUsage });
    return;
  }
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
    await runMain(main, { rawArgs });
    return;
  }
  // The first signal asks the running command to stop cleanly; a second one leaves at once, and
  // the exit handler still removes the temporary files and folders this run made.
  for (const name of Object.keys(INTERRUPTS) as (keyof typeof INTERRUPTS)[]) {
    process.on(name, () => {
      if (interrupt.signal.aborted) process.exit(interruptExitCode());
      // A closed terminal fails every later write (EIO), which must not turn a clean stop into a crash.
      if (name === "SIGHUP")
        for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
      // A closed terminal (SIGHUP) has nowhere to show this.
      if (name === "SIGINT") process.stderr.write("\ninterrupting (Ctrl-C again to quit at once)...\n");
      else if (name === "SIGTERM")
        process.stderr.write("\ninterrupting (SIGTERM; again to quit at once)...\n");
      interrupt.abort(name);
    });
  }
  process.on("exit", removeTempsSync);
  try {
    await checkArgs(main, rawArgs);
    const swept = await sweepScratch();
    if (swept.length > 0)
      info(
        `removed ${swept.length} temporary file${swept.length > 1 ? "s" : ""} of killed loramix runs (${swept[0]}${swept.length > 1 ? ", ..." : ""})`,
      );
    await runCommand(main, { rawArgs });
    // Past the commit point a command finishes, whatever came in after it: the output is whole.
    if (interrupt.signal.aborted) info("finished before the interrupt took effect: its output is complete");
  } catch (error) {
    process.exitCode = report(error, verbose);
  }
}

/**
 * citty's help, readable in a pipe and a narrow terminal: no colour codes unless stdout is a
 * terminal and NO_COLOR is unset (any value, as no-color.org says), no padding after the last
 * column, and long descriptions wrapped under their column.
 */
async function showUsage<T extends ArgsDef = ArgsDef>(
  cmd: CommandDef<T>,
  parent?: CommandDef<T>,
): Promise<void> {
  let text = await renderUsage(cmd, parent);
  const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
  if (!colour) text = stripAnsi(text);
  const width = Math.max(60, Math.min(process.stdout.columns ?? 100, 120));
  process.stdout.write(
    `${text
      .split("\n")
      .flatMap((l) => wrapLine(l.trimEnd(), width))
      .join("\n")}\n\n`,
  );
}

/** SGR colour codes (ESC [ ... m), which take no columns. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const stripAnsi = (s: string) => s.replace(ANSI_COLOUR, "");

/** Wraps at spaces, continuing under the description column (after the first run of 2+ spaces). */
function wrapLine(line: string, width: number): string[] {
  const visible = (s: string) => stripAnsi(s).length;
  if (visible(line) <= width) return [line];
  const column = /^(\s*\S.*?\s{2,})\S/.exec(stripAnsi(line));
  const indent = " ".repeat(column ? Math.min((column[1] as string).length, width / 2) : 2);
  const out: string[] = [];
  let current = "";
  for (const word of line.split(/(?<=\S) (?=\S)/)) {
    if (current !== "" && visible(current) + 1 + visible(word) > width) {
      out.push(current);
      current = indent + word.trimStart();
    } else current = current === "" ? word : `${current} ${word}`;
  }
  out.push(current);
  return out;
}

/** The one place that prints errors: a single line for user errors, the stack for bugs. */
function report(error: unknown, verbose: boolean): number {
  if (error instanceof LoramixError) {
    // One line, whatever a quoted snippet or a library's message carries.
    process.stderr.write(`loramix: ${cliMessage(error).replace(/\s*\n\s*/g, " ")}\n`);
    if (verbose && error.stack) process.stderr.write(`${error.stack}\n`);
    return error.code === "ABORTED" ? interruptExitCode() : error.code === "USAGE" ? 2 : 1;
  }
  const e = error as { name?: string; message?: string; stack?: string; code?: string };
  if (e?.name === "CLIError" || e?.code?.startsWith?.("E_")) {
    process.stderr.write(`loramix: ${e.message} (see loramix --help)\n`);
    return 2;
  }
  if (!verbose && (e as NodeJS.ErrnoException)?.code && typeof e.message === "string") {
    // System errors (ENOENT, EACCES...) already name the path.
    process.stderr.write(`loramix: ${e.message}\n`);
    return 1;
  }
  process.stderr.write(`loramix: internal error: ${e?.stack ?? String(error)}\n`);
  return 1;
}

await run();
