import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Who made a temporary file: `<pid>.<start>.<host>`, written into every temporary name loramix
 * makes, so that a later run can tell the leftovers of a dead run from the work of a live one.
 *
 * A pid alone is not enough: pids are reused (in a container every run may be pid 1 or 7), so the
 * tag also holds the process's start time in clock ticks since boot (Linux /proc/PID/stat, field
 * 22): fixed for the process's life, and compared exactly with whoever holds the pid now, with no
 * wall clock involved (which suspend or NTP would shift). The host (a hash of its name) keeps a run
 * from judging another machine's files on a shared folder, whose pids mean nothing here.
 */
export interface RunTag {
  pid: number;
  /** Start ticks in base 36; null where /proc is missing (then a live pid counts as the owner). */
  start: string | null;
  host: string;
}

const HOST = createHash("sha256").update(hostname()).digest("hex").slice(0, 6);

/** The start time (clock ticks since boot, base 36) of process `pid`, or null where /proc does not say. */
function startTicks(pid: number | "self"): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = fields[19];
    return ticks !== undefined && /^\d+$/.test(ticks) ? Number(ticks).toString(36) : null;
  } catch {
    return null;
  }
}

const OWN: RunTag = { pid: process.pid, start: startTicks("self"), host: HOST };

/** This process's tag as it appears in names. */
export const RUN_TAG = `${OWN.pid}.${OWN.start ?? "x"}.${OWN.host}`;

/** The pattern of RUN_TAG inside a name, with its three parts captured. */
export const RUN_TAG_PATTERN = String.raw`(\d+)\.([0-9a-z]+)\.([0-9a-f]{6})`;

/** The tag from RUN_TAG_PATTERN's three captures. */
export function runTagOf(pid: string, start: string, host: string): RunTag {
  return { pid: Number(pid), start: start === "x" ? null : start, host };
}

/**
 * Whether the run that wrote `tag` may still be working: it is on another host (not ours to
 * judge), or its pid is alive and, where /proc tells, was started at the tag's time. A legacy
 * name (pid only) is judged by the pid. When in doubt, alive: a leftover stays rather than a live
 * run's file going.
 */
export function runAlive(tag: RunTag | { pid: number; start?: undefined; host?: undefined }): boolean {
  if (tag.host !== undefined && tag.host !== OWN.host) return true;
  if (tag.pid === OWN.pid) return tag.start === undefined || tag.start === null || tag.start === OWN.start;
  try {
    process.kill(tag.pid, 0);
  } catch (error) {
    // EPERM: the pid exists, under another user.
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  if (tag.start === undefined || tag.start === null) return true;
  const now = startTicks(tag.pid);
  return now === null || now === tag.start;
}
