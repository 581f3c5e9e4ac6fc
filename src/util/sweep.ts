import { lstat, readdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { RUN_TAG_PATTERN, runAlive, runTagOf } from "./runTag.js";

/**
 * What a killed run leaves and the next run removes, found by loramix's own names only and judged
 * by the run tag in them (runTag.ts): nothing of a live run, nothing of another user, nothing that
 * does not match these patterns.
 */

/** $TMPDIR: scratch folders and files, `loramix-<kind>-<run tag>-...` (scratch.ts). */
const SCRATCH = new RegExp(`^loramix-[a-z]+-${RUN_TAG_PATTERN}-`);
/** $TMPDIR, before run tags: a converted model, `.NAME.tmp-<pid>-<8 hex>.gguf`. */
const LEGACY_GGUF = /^\..+\.tmp-(\d+)-[0-9a-f]{8}\.gguf$/;
/**
 * Beside an output: `.NAME.tmp-<run tag>-<8 hex>` (a temp file or folder, and SQLite's journal of
 * a bank being made), `.NAME.old-<run tag>-<8 hex>` (an old output set aside), and before run tags
 * `.NAME.tmp-<pid>-<8 hex>`.
 */
const SIBLING = new RegExp(`^\\.(.+)\\.(tmp|old)-${RUN_TAG_PATTERN}-[0-9a-f]{8}(?:-journal|-wal|-shm)?$`);
const LEGACY_SIBLING = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

export interface Leftover {
  path: string;
  /** Set for an old output set aside: moved back there if nothing took its place. */
  restoreTo: string | null;
}

const uid = process.getuid?.();

/** Whether `path` is ours to judge (this user's; everyone's where there are no uids). */
async function owned(path: string): Promise<boolean> {
  const info = await lstat(path).catch(() => null);
  return info !== null && (uid === undefined || info.uid === uid);
}

/** A leftover's verdict from its name: null when the name is not loramix's or its run is alive. */
function deadSibling(dir: string, name: string, of?: string): Leftover | null {
  const tagged = SIBLING.exec(name);
  if (tagged) {
    if (of !== undefined && tagged[1] !== of) return null;
    if (runAlive(runTagOf(tagged[3] as string, tagged[4] as string, tagged[5] as string))) return null;
    return { path: join(dir, name), restoreTo: tagged[2] === "old" ? join(dir, tagged[1] as string) : null };
  }
  const legacy = LEGACY_SIBLING.exec(name);
  if (legacy === null || (of !== undefined && legacy[1] !== of) || runAlive({ pid: Number(legacy[2]) }))
    return null;
  return { path: join(dir, name), restoreTo: null };
}

/** Leftovers of dead runs in $TMPDIR (or `dir`): scratch, converted models, temp files of outputs written there. */
export async function deadScratch(dir = tmpdir()): Promise<Leftover[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const found: Leftover[] = [];
  for (const name of names) {
    let leftover: Leftover | null = null;
    const tagged = SCRATCH.exec(name);
    const legacy = LEGACY_GGUF.exec(name);
    if (tagged) {
      if (!runAlive(runTagOf(tagged[1] as string, tagged[2] as string, tagged[3] as string)))
        leftover = { path: join(dir, name), restoreTo: null };
    } else if (legacy) {
      if (!runAlive({ pid: Number(legacy[1]) })) leftover = { path: join(dir, name), restoreTo: null };
    } else leftover = deadSibling(dir, name);
    if (leftover !== null && (await owned(leftover.path))) found.push(leftover);
  }
  return found;
}

/** Leftovers of dead runs that were writing `path`: its temp siblings and set-aside old versions. */
export async function deadSiblings(path: string): Promise<Leftover[]> {
  const dir = dirname(path);
  const found: Leftover[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const leftover = deadSibling(dir, name, basename(path));
    if (leftover !== null && (await owned(leftover.path))) found.push(leftover);
  }
  return found;
}

/** Removes leftovers (or moves an old output back where its replacement never landed); returns what it removed. */
export async function removeLeftovers(leftovers: readonly Leftover[]): Promise<string[]> {
  const removed: string[] = [];
  for (const { path, restoreTo } of leftovers) {
    try {
      if (restoreTo !== null && (await lstat(restoreTo).catch(() => null)) === null) {
        await rename(path, restoreTo);
        continue;
      }
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Another run removing the same leftover, or a permission: left as it is.
    }
  }
  return removed;
}

/** Removes the leftovers of dead runs in $TMPDIR; the CLI does this as it starts. */
export async function sweepScratch(dir = tmpdir()): Promise<string[]> {
  return removeLeftovers(await deadScratch(dir));
}

/** Removes the leftovers of dead runs that were writing `path`, before this run writes it. */
export async function sweepBeside(path: string): Promise<void> {
  await removeLeftovers(await deadSiblings(path));
}
