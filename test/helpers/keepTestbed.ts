import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./shared.js";

/**
 * Many tests use the shipped testbed as a user does, and loramix caches what it learns in its
 * bank (stat fingerprints of the adapters, one-side profiles): the shipped bank.sqlite is put back
 * as it was once the run ends, so that `npm test` leaves the checkout as it found it.
 */
const BANK = join(REPO, "testbed/bank.sqlite");

export function setup(): () => void {
  const shipped = readFileSync(BANK);
  return () => {
    writeFileSync(BANK, shipped);
    for (const side of ["-wal", "-shm"]) rmSync(`${BANK}${side}`, { force: true });
  };
}
