import { existsSync } from "node:fs";
import { LoramixError, option } from "../errors.js";
import { forEachConcurrent } from "../util/concurrent.js";
import { hashPath, statFingerprint } from "../util/hash.js";
import type { Bank, BankEntry } from "./store.js";

/** Cache kind of an adapter's stat fingerprint, keyed by entry id and the hash it was checked against. */
const FINGERPRINTS = "adapter-fingerprint";

const keyOf = (entry: BankEntry) => `${entry.id}\0${entry.adapterHash}`;

/** Records what the adapter looks like on disk now, after its hash was taken or confirmed. */
export async function rememberAdapter(bank: Bank, entry: BankEntry, signal?: AbortSignal): Promise<void> {
  if (entry.adapterPath === null) return;
  bank.putCache(FINGERPRINTS, keyOf(entry), Buffer.from(await statFingerprint(entry.adapterPath, signal)));
}

/**
 * Refuses to use bank adapters whose bytes changed since they were added: a changed adapter is no
 * longer the one the bank's numbers describe. Names, sizes and times are compared first; only an
 * adapter whose fingerprint differs (or was never taken) is re-hashed.
 */
const REPLACE = option("replace", true);

export async function checkAdaptersUnchanged(
  bank: Bank,
  entries: BankEntry[],
  signal?: AbortSignal,
): Promise<void> {
  // The checks wait on the file system, not the CPU: several in flight hide its latency.
  await forEachConcurrent(entries, STAT_CONCURRENCY, async (entry) => {
    const path = entry.adapterPath;
    if (path === null) return;
    if (!existsSync(path))
      throw new LoramixError(
        "BANK",
        `${path}: adapter of "${entry.id}" is missing (it was added to ${bank.dir})`,
      );
    const known = bank.getCache(FINGERPRINTS, keyOf(entry));
    if (known !== undefined && Buffer.from(known).toString() === (await statFingerprint(path, signal)))
      return;
    if ((await hashPath(path, signal)) !== entry.adapterHash) {
      throw new LoramixError(
        "BANK",
        `${path}: adapter of "${entry.id}" changed since it was added to ${bank.dir}; restore it, or add it again (bank add with ${REPLACE.text})`,
        { options: [REPLACE] },
      );
    }
    await rememberAdapter(bank, entry, signal);
  });
}

const STAT_CONCURRENCY = 16;
