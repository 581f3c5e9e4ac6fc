import { createHash } from "node:crypto";
import type { DatasetRecord, SplitName } from "./record.js";

/**
 * SPEC §1: SHA-1 of the id (the 0-based index as a decimal string when there is no id), read as a
 * big-endian unsigned integer, modulo 10: 0–7 train, 8 valid, 9 test. The modulo runs over the
 * digest bytes (Horner's rule), which equals the big-integer remainder.
 */
export function splitOf(id: string | undefined, index: number): SplitName {
  const digest = createHash("sha1")
    .update(id ?? String(index), "utf8")
    .digest();
  let rem = 0;
  for (const byte of digest) rem = (rem * 256 + byte) % 10;
  return rem <= 7 ? "train" : rem === 8 ? "valid" : "test";
}

export function hashSplit(records: readonly DatasetRecord[]): Record<SplitName, DatasetRecord[]> {
  const splits: Record<SplitName, DatasetRecord[]> = { train: [], valid: [], test: [] };
  records.forEach((r, i) => {
    splits[splitOf(r.id, i)].push(r);
  });
  return splits;
}
