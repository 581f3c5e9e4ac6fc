import { randomBytes } from "node:crypto";
import { existsSync, renameSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUN_TAG } from "./runTag.js";

/**
 * Every temporary path this process has made and not yet removed or renamed into place, mapped to
 * where it must go back on a forced exit (an old output moved aside) or null (removed). Code that
 * finishes normally removes its own in `finally`; this list is for an exit that cannot wait for
 * that (a second Ctrl-C, a second SIGTERM): `removeTempsSync` runs from the CLI's exit handler.
 */
const temps = new Map<string, string | null>();

/** Records a temporary path (removed on a forced exit, or moved back to `restoreTo`). */
export function trackTemp(path: string, restoreTo: string | null = null): void {
  temps.set(path, restoreTo);
}

/** The path was renamed into place or removed: nothing to do for it on exit. */
export function forgetTemp(path: string): void {
  temps.delete(path);
}

/**
 * A fresh folder in $TMPDIR named `loramix-<kind>-<run tag>-XXXXXX`, tracked: the run tag lets a
 * later run remove it if this process dies without doing so (sweep.ts).
 */
export async function scratchDir(kind: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `loramix-${kind}-${RUN_TAG}-`));
  trackTemp(dir);
  return dir;
}

/** A fresh file path in $TMPDIR, `loramix-<kind>-<run tag>-<random><suffix>`, tracked (not created). */
export function scratchFile(kind: string, suffix: string): string {
  const file = join(tmpdir(), `loramix-${kind}-${RUN_TAG}-${randomBytes(4).toString("hex")}${suffix}`);
  trackTemp(file);
  return file;
}

/** Removes a scratch folder or file and forgets it. */
export async function removeScratch(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  forgetTemp(path);
}

/**
 * Synchronous, for process exit: removes every tracked path and moves old outputs set aside back
 * when their replacement never landed. Errors are ignored: the process is leaving, and the next
 * run's sweep finds what is left by its run tag.
 */
export function removeTempsSync(): void {
  for (const [path, restoreTo] of temps) {
    try {
      if (restoreTo !== null && !existsSync(restoreTo)) renameSync(path, restoreTo);
      else rmSync(path, { recursive: true, force: true });
    } catch {
      // Left for the next run's sweep.
    }
  }
  temps.clear();
}
