import { existsSync } from "node:fs";
import { LoramixError, throwIfAborted } from "../errors.js";
import { compareLayouts, loadAdapter } from "../formats/peft.js";
import { loadTokenizer } from "../tokenizers/load.js";
import { hashPath } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";
import type { Bank } from "./store.js";

export type VerifyProblemKind =
  | "tokenizer" // the bank's tokenizer is missing or no longer the one profiles were made with
  | "missing-data"
  | "data-hash"
  | "missing-adapter"
  | "adapter-hash"
  | "adapter-invalid" // the adapter no longer loads
  | "layout" // the adapter's layout differs from the bank's
  | "stale-profile"; // no profile for the current dataset (run `loramix bank index`)

export interface VerifyProblem {
  /** Entry id, or null for bank-wide problems. */
  id: string | null;
  kind: VerifyProblemKind;
  /** One line naming the file and the problem. */
  message: string;
}

export interface VerifyReport {
  entries: number;
  problems: VerifyProblem[];
}

/**
 * Re-hashes every adapter and dataset, reloads adapters to re-check their layout against the
 * bank's, and lists stale profiles. Collects every problem instead of stopping at the first.
 */
export async function verifyBank(
  bank: Bank,
  { signal, progress }: { signal?: AbortSignal; progress?: ProgressSink } = {},
): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  try {
    const tokenizer = await loadTokenizer(bank.tokenizer);
    if (tokenizer.name !== bank.tokenizerName) {
      problems.push({
        id: null,
        kind: "tokenizer",
        message: `${bank.tokenizer}: tokenizer is ${tokenizer.name}, the bank was made with ${bank.tokenizerName}`,
      });
    }
  } catch (error) {
    if (!(error instanceof LoramixError)) throw error;
    problems.push({ id: null, kind: "tokenizer", message: error.message });
  }

  const layout = bank.layout();
  const stale = new Set(bank.staleIds());
  const entries = bank.entries();
  for (const [i, entry] of entries.entries()) {
    throwIfAborted(signal);
    const { id } = entry;
    if (!existsSync(entry.dataPath)) {
      problems.push({
        id,
        kind: "missing-data",
        message: `${entry.dataPath}: dataset of "${id}" is missing`,
      });
    } else if ((await hashPath(entry.dataPath, signal)) !== entry.dataHash) {
      problems.push({
        id,
        kind: "data-hash",
        message: `${entry.dataPath}: dataset of "${id}" changed since it was added`,
      });
    } else if (stale.has(id)) {
      problems.push({
        id,
        kind: "stale-profile",
        message: `${entry.dataPath}: no current profile for "${id}" (run \`loramix bank index\`)`,
      });
    }
    if (entry.adapterPath !== null) {
      problems.push(...(await checkAdapter(entry.adapterPath, entry.adapterHash, id, layout, signal)));
    }
    progress?.({ phase: "verify", done: i + 1, total: entries.length, unit: "entries" });
  }
  return { entries: entries.length, problems };
}

async function checkAdapter(
  path: string,
  hash: string | null,
  id: string,
  layout: ReturnType<Bank["layout"]>,
  signal: AbortSignal | undefined,
): Promise<VerifyProblem[]> {
  if (!existsSync(path)) {
    return [{ id, kind: "missing-adapter", message: `${path}: adapter of "${id}" is missing` }];
  }
  const problems: VerifyProblem[] = [];
  if ((await hashPath(path, signal)) !== hash) {
    problems.push({
      id,
      kind: "adapter-hash",
      message: `${path}: adapter of "${id}" changed since it was added`,
    });
  }
  try {
    const adapter = await loadAdapter(path);
    const differences = layout === null ? ["the bank has no layout"] : compareLayouts(layout, adapter.layout);
    if (differences.length > 0) {
      problems.push({
        id,
        kind: "layout",
        message: `${path}: adapter layout of "${id}" differs from the bank's (bank vs this adapter): ${differences.join("; ")}`,
      });
    }
  } catch (error) {
    if (!(error instanceof LoramixError)) throw error;
    problems.push({ id, kind: "adapter-invalid", message: error.message });
  }
  return problems;
}
