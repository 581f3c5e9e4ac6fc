import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { DatasetOptions } from "../datasets/load.js";
import { openDataset } from "../datasets/open.js";
import { formatError, inputError, LoramixError, option, throwIfAborted } from "../errors.js";
import { type AdapterLayout, compareLayouts, firstNonFinite, loadAdapter } from "../formats/peft.js";
import { hashPath } from "../util/hash.js";
import { adapterBaseDifferences, resolveBaseModel } from "./baseModel.js";
import { type Bank, type BankEntry, checkEntryId, layoutError } from "./store.js";
import { rememberAdapter } from "./unchanged.js";

export interface AddEntryOptions {
  id: string;
  /** Dataset file or directory (Super-NI task JSON, JSONL, JSON array, Parquet / HF dataset dir). */
  data: string;
  /** PEFT LoRA directory; without it the entry is dataset-only (distances, never mixed). */
  adapter?: string;
  /** Merged over the dataset's own metadata (Super-NI categories, source, domains...). */
  metadata?: Record<string, unknown>;
  dataOptions?: DatasetOptions;
  /** Overwrite an entry with the same id instead of refusing. */
  replace?: boolean;
  signal?: AbortSignal;
}

/**
 * Checks and adds one entry: the dataset must load, the adapter must load and share the bank's
 * layout; both are hashed. Nothing is written until every check passed, then one transaction.
 */
export async function addEntry(
  bank: Bank,
  { id, data, adapter, metadata = {}, dataOptions = {}, replace = false, signal }: AddEntryOptions,
): Promise<BankEntry> {
  checkEntryId(id);
  if (!replace && bank.entry(id)) {
    const replace = option("replace", true);
    throw new LoramixError("BANK", `${bank.dir}: entry "${id}" already exists (pass ${replace.text})`, {
      options: [replace],
    });
  }
  // An adapter is checked against the base model's shapes, which a moved bank cannot find.
  const moved = adapter === undefined ? null : bank.baseModelMissing();
  if (moved !== null) throw new LoramixError("BANK", moved);
  const dataPath = resolve(data);
  if (!existsSync(dataPath)) throw inputError(dataPath, "dataset not found");
  const dataset = await openDataset(dataPath, dataOptions);
  // Every record is read once, so a bad line is refused now rather than at `bank index`; none is kept.
  for await (const _ of dataset.records(signal)) {
  }

  let adapterPath: string | null = null;
  let adapterHash: string | null = null;
  let layout: AdapterLayout | undefined;
  if (adapter !== undefined) {
    adapterPath = resolve(adapter);
    if (!existsSync(adapterPath)) throw inputError(adapterPath, "adapter directory not found");
    const loaded = await loadAdapter(adapterPath);
    // Checked before the layout: "made for another model" says more than a list of shape differences.
    const baseName = bank.baseModel;
    if (baseName !== null) {
      const differences = adapterBaseDifferences(loaded.modules, await resolveBaseModel(baseName));
      if (differences.length > 0)
        throw new LoramixError(
          "LAYOUT",
          `${adapterPath}: adapter does not fit the bank's base model ${baseName}: ${differences.join("; ")}`,
        );
    }
    const current = bank.layout();
    if (current !== null) {
      const differences = compareLayouts(current, loaded.layout);
      if (differences.length > 0) throw layoutError(adapterPath, differences);
    }
    const bad = await firstNonFinite(loaded, signal);
    if (bad !== null)
      throw formatError(
        loaded.file,
        `${bad}; non-finite weights would spread into every adapter mixed from the bank`,
      );
    layout = loaded.layout;
    adapterHash = await hashPath(adapterPath, signal);
  }
  const dataHash = await hashPath(dataPath, signal);
  throwIfAborted(signal);

  const entry = {
    id,
    adapterPath,
    adapterHash,
    dataPath,
    dataHash,
    dataOptions,
    metadata: { ...dataset.metadata, ...metadata },
  };
  bank.putEntry(entry, { replace, ...(layout ? { layout } : {}) });
  const added = bank.entry(id)!;
  await rememberAdapter(bank, added, signal);
  return added;
}
