import type { Bank } from "./store.js";

export interface EntrySummary {
  id: string;
  hasAdapter: boolean;
  /** From the stored profile (fresh or stale); null when the entry was never profiled. */
  records: number | null;
  tokens: number | null;
  profile: "fresh" | "stale" | "missing";
  categories: string[];
}

/** One row per entry, for `bank ls`: no files are read, only the bank database. */
export function listEntries(bank: Bank): EntrySummary[] {
  const profiles = bank.profileSummaries();
  return bank.entries().map((e) => {
    const p = profiles.get(e.id);
    const categories = e.metadata.categories;
    return {
      id: e.id,
      hasAdapter: e.adapterPath !== null,
      records: p?.nRecords ?? null,
      tokens: p?.nTokens ?? null,
      profile: p === undefined ? "missing" : p.fresh ? "fresh" : "stale",
      categories: Array.isArray(categories)
        ? categories.filter((c): c is string => typeof c === "string")
        : [],
    };
  });
}
