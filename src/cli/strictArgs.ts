import type { ArgsDef, CommandDef } from "citty";
import { usageError } from "../errors.js";

/** Options every command takes (handled by main.ts and citty). */
const GLOBAL = ["verbose", "quiet", "help", "h", "version"];

type Resolvable<T> = T | Promise<T> | (() => T | Promise<T>);

async function resolveValue<T>(v: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/** The closest of `known` to `word` when it is close enough to be a typo. */
export function didYouMean(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(word, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/**
 * citty passes unknown options through silently, so a typo (`--metirc wd`) would run with the
 * default. This walks the subcommands named in `rawArgs`, then refuses any `--option` the command
 * does not define (exit 2 through the usage error), suggesting the nearest name.
 */
export async function checkArgs(
  // biome-ignore lint/suspicious/noExplicitAny: any command's argument definitions
  main: CommandDef<any>,
  rawArgs: readonly string[],
): Promise<void> {
  const { path, args, rest } = await resolveCommand(main, rawArgs);
  const names = new Set<string>(GLOBAL);
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    names.add(name);
    for (const alias of [(def as { alias?: string | string[] }).alias ?? []].flat()) names.add(alias);
  }
  for (let i = rest; i < rawArgs.length; i++) {
    const word = rawArgs[i] as string;
    if (word === "--") break;
    if (!word.startsWith("-") || /^-\d/.test(word)) continue;
    const name = word.replace(/^--?/, "").split("=")[0] as string;
    const bare = name.startsWith("no-") && !names.has(name) ? name.slice(3) : name;
    if (names.has(bare)) continue;
    const hint = didYouMean(
      bare,
      [...names].filter((n) => n.length > 1),
    );
    throw usageError(
      `unknown option "${word.split("=")[0]}" for "${path}"${hint ? `; did you mean "--${hint}"?` : ""} (see ${path} --help)`,
    );
  }
}

/**
 * The (sub)command `rawArgs` names: its path ("loramix bank ls"), its argument definitions and
 * the index of the first word after the command names. An unknown command is a usage error.
 */
export async function resolveCommand(
  // biome-ignore lint/suspicious/noExplicitAny: any command's argument definitions
  main: CommandDef<any>,
  rawArgs: readonly string[],
): Promise<{ path: string; args: ArgsDef; rest: number }> {
  let command = main as CommandDef;
  let path = "loramix";
  let i = 0;
  for (; i < rawArgs.length; i++) {
    const word = rawArgs[i] as string;
    if (word.startsWith("-")) break;
    const subs = await resolveValue(
      command.subCommands as Resolvable<Record<string, Resolvable<CommandDef>>>,
    );
    if (!subs) break;
    const next = await resolveValue(subs[word]);
    if (!next) {
      const hint = didYouMean(word, Object.keys(subs));
      throw usageError(
        `unknown command "${path} ${word}"${hint ? `; did you mean "${path} ${hint}"?` : ""} (see ${path} --help)`,
      );
    }
    command = next;
    path = `${path} ${word}`;
  }
  const args = ((await resolveValue(command.args as Resolvable<ArgsDef>)) ?? {}) as ArgsDef;
  return { path, args, rest: i };
}
