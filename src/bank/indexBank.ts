import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { openDataset } from "../datasets/open.js";
import { throwIfAborted } from "../errors.js";
import type { ProfileSide } from "../profiles/profile.js";
import { profileDataset } from "../profiles/profileDataset.js";
import { hashPath } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";
import type { Bank } from "./store.js";

export interface IndexResult {
  /** Entries profiled by this run. */
  profiled: number;
  /** Entries whose profile was already fresh. */
  skipped: number;
  /** Tokens counted by this run. */
  tokens: number;
  seconds: number;
  /** Entries that could not be profiled (dataset missing or changed since it was added), one line each. */
  problems: string[];
}

/**
 * Profiles (SPEC §2, train split; `side` "both" unless asked) every entry whose profile is missing or stale. Each profile is
 * committed on its own, so an interrupted run keeps what it finished and a rerun continues.
 * A dataset whose bytes no longer match the hash taken at `add` is reported, not profiled:
 * profiling it would silently accept an edit that `verify` exists to catch.
 */
export async function indexBank(
  bank: Bank,
  {
    side = "both",
    threads = availableParallelism(),
    signal,
    progress,
  }: { side?: ProfileSide; threads?: number; signal?: AbortSignal; progress?: ProgressSink } = {},
): Promise<IndexResult> {
  const started = performance.now();
  const stale = bank.staleIds(side);
  const result: IndexResult = {
    profiled: 0,
    skipped: bank.entries().length - stale.length,
    tokens: 0,
    seconds: 0,
    problems: [],
  };
  for (const [i, id] of stale.entries()) {
    throwIfAborted(signal);
    const entry = bank.entry(id);
    if (entry) {
      if (!existsSync(entry.dataPath)) {
        result.problems.push(`${entry.dataPath}: dataset of "${id}" is missing`);
      } else if ((await hashPath(entry.dataPath, signal)) !== entry.dataHash) {
        result.problems.push(
          `${entry.dataPath}: dataset of "${id}" changed since it was added (add it again, replacing the entry)`,
        );
      } else {
        const { profile } = await profileDataset(await openDataset(entry.dataPath, entry.dataOptions), {
          tokenizer: bank.tokenizer,
          side,
          threads,
          signal,
        });
        bank.putProfile(id, profile, entry.dataHash);
        result.profiled++;
        result.tokens += profile.nTokens;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    progress?.({
      phase: "index",
      done: i + 1,
      total: stale.length,
      unit: "entries",
      detail: seconds > 0 ? `${Math.round(result.tokens / seconds / 1000)}k tokens/s` : "",
    });
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
