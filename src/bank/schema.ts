import type BetterSqlite3 from "better-sqlite3";
import { LoramixError } from "../errors.js";

/**
 * The bank's on-disk schema. Bump SCHEMA_VERSION on any incompatible change: an older loramix
 * must refuse a newer bank instead of misreading it.
 */
export const SCHEMA_VERSION = 1;

export const BANK_FILE = "bank.sqlite";

const DDL = `
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  adapter_path TEXT,
  adapter_hash TEXT,
  data_path TEXT NOT NULL,
  data_hash TEXT NOT NULL,
  data_options TEXT NOT NULL,
  metadata TEXT NOT NULL,
  added_at TEXT NOT NULL,
  CHECK ((adapter_path IS NULL) = (adapter_hash IS NULL))
) STRICT;
CREATE TABLE profiles (
  entry_id TEXT PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
  data_hash TEXT NOT NULL,
  tokenizer TEXT NOT NULL,
  vocab_size INTEGER NOT NULL,
  n_records INTEGER NOT NULL,
  n_tokens INTEGER NOT NULL,
  profile_hash TEXT NOT NULL,
  ids BLOB NOT NULL,
  counts BLOB NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
CREATE TABLE cache (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (kind, key)
) STRICT;
`;

export function createSchema(db: BetterSqlite3.Database): void {
  db.exec(DDL);
}

/** Reads the schema version, refusing databases that are not banks or are from a newer loramix. */
export function checkSchema(db: BetterSqlite3.Database, file: string): void {
  const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!table) throw new LoramixError("BANK", `${file}: not a loramix bank database (no meta table)`);
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
    | { value: string }
    | undefined;
  if (!row) throw new LoramixError("BANK", `${file}: not a loramix bank database (no schema version)`);
  const version = Number(row.value);
  if (version !== SCHEMA_VERSION) {
    throw new LoramixError(
      "BANK",
      `${file}: bank schema version ${row.value} is not supported (this loramix reads version ${SCHEMA_VERSION})`,
    );
  }
}
