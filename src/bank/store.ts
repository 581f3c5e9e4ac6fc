import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import Database from "better-sqlite3";
import type { DatasetOptions } from "../datasets/load.js";
import { formatError, inputError, LoramixError, option } from "../errors.js";
import { TOKENIZER_JSON } from "../formats/fileNames.js";
import { type AdapterLayout, compareLayouts } from "../formats/peft.js";
import { type Profile, type ProfileSide, profileFromJson, profileToJson } from "../profiles/profile.js";
import { loadTokenizer } from "../tokenizers/load.js";
import { tempPathFor, writeFileAtomic } from "../util/atomic.js";
import { forgetTemp } from "../util/scratch.js";
import { checkTokenizerFits, resolveBaseModel } from "./baseModel.js";
import { BANK_FILE, checkSchema, createSchema, SCHEMA_VERSION } from "./schema.js";

/**
 * Entry ids appear in file names and command lines, so they stay in a shell- and path-safe
 * alphabet, and short enough for a file name on any file system.
 */
const ENTRY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

export function checkEntryId(id: string): void {
  if (!ENTRY_ID_PATTERN.test(id)) {
    const shown = id.length > 60 ? `${id.slice(0, 60)}…` : id;
    throw new LoramixError(
      "USAGE",
      `entry id "${shown}" must be 1 to 128 letters, digits, "_", "." or "-" (it has ${id.length} characters)`,
    );
  }
}

/** A copied tokenizer lives under this name, so the bank keeps working when the original moves. */
const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

export interface BankEntry {
  id: string;
  /** Absolute; null for a dataset-only entry (used for distances, never mixed). */
  adapterPath: string | null;
  adapterHash: string | null;
  /** Absolute. */
  dataPath: string;
  dataHash: string;
  /** Field names etc. the dataset is read with, so indexing reads it as `add` did. */
  dataOptions: DatasetOptions;
  metadata: Record<string, unknown>;
  addedAt: string;
}

export type NewEntry = Omit<BankEntry, "addedAt">;

/** What `ls` shows without decoding histograms. */
export interface ProfileSummary {
  nRecords: number;
  nTokens: number;
  /** The profile matches the entry's current dataset hash and the bank's tokenizer. */
  fresh: boolean;
}

interface EntryRow {
  id: string;
  adapter_path: string | null;
  adapter_hash: string | null;
  data_path: string;
  data_hash: string;
  data_options: string;
  metadata: string;
  added_at: string;
}

interface ProfileRow {
  entry_id: string;
  data_hash: string;
  tokenizer: string;
  vocab_size: number;
  n_records: number;
  n_tokens: number;
  profile_hash: string;
  ids: Buffer;
  counts: Buffer;
}

/**
 * A bank directory: `bank.sqlite` (entries, profiles, caches) beside the files it may hold.
 * Every write is one SQLite transaction, so a crash or Ctrl-C leaves the previous state.
 */
export class Bank {
  readonly dir: string;
  /** What loadTokenizer takes: "mistral" or the absolute path of the bank's tokenizer.json. */
  readonly tokenizer: string;
  /** The tokenizer identity profiles must carry ("mistral" or "hf:<sha256>"). */
  readonly tokenizerName: string;
  readonly vocabSize: number;
  readonly createdAt: string;
  /** The loramix version that created the bank. */
  readonly createdBy: string;
  private readonly db: Database.Database;

  private constructor(dir: string, db: Database.Database) {
    this.dir = dir;
    this.db = db;
    const file = join(dir, BANK_FILE);
    const spec = this.meta("tokenizer_spec");
    const name = this.meta("tokenizer_name");
    const vocab = Number(this.meta("vocab_size"));
    if (spec === undefined || name === undefined || !Number.isSafeInteger(vocab) || vocab <= 0) {
      throw new LoramixError(
        "BANK",
        `${file}: tokenizer or vocabulary size missing from the bank's meta table`,
      );
    }
    this.tokenizer = spec === "mistral" ? spec : resolve(dir, spec);
    this.tokenizerName = name;
    this.vocabSize = vocab;
    this.createdAt = this.meta("created_at") ?? "";
    this.createdBy = this.meta("loramix_version") ?? "";
  }

  /**
   * Creates a bank in `dir` (created if missing). A tokenizer given by path is copied into the bank
   * (with its tokenizer_config.json, which decides the BOS token) so the bank is self-contained.
   */
  static async init(
    dir: string,
    { tokenizer, baseModel }: { tokenizer: string; baseModel?: string },
  ): Promise<Bank> {
    dir = resolve(dir);
    const base = baseModel === undefined ? undefined : await resolveBaseModel(baseModel);
    const file = join(dir, BANK_FILE);
    if (existsSync(file))
      throw new LoramixError("BANK", `${dir}: already a loramix bank (${BANK_FILE} exists)`);
    let spec = "mistral";
    if (tokenizer !== "mistral") {
      const source = resolve(tokenizer);
      if (!existsSync(source))
        throw inputError(source, "tokenizer not found (give `mistral` or a tokenizer.json)");
      const json = statSync(source).isDirectory() ? join(source, TOKENIZER_JSON) : source;
      if (!existsSync(json)) throw inputError(source, `no ${TOKENIZER_JSON} in this directory`);
      const config = join(json, "..", TOKENIZER_CONFIG_FILE);
      const target = join(dir, TOKENIZER_JSON);
      if (resolve(json) !== target) {
        const copies: [string, string][] = [[json, target]];
        if (existsSync(config)) copies.push([config, join(dir, TOKENIZER_CONFIG_FILE)]);
        // The folder may hold the user's files: the same tokenizer is kept, another one is never replaced.
        for (const [from, to] of copies) {
          const there = await readFile(to).catch(() => null);
          if (there !== null && !there.equals(await readFile(from)))
            throw inputError(
              to,
              `exists and is not ${from}; loramix does not replace a file it did not write: make the bank in a new folder, or remove the file yourself`,
            );
        }
        for (const [from, to] of copies) await writeFileAtomic(to, await readFile(from));
      }
      spec = TOKENIZER_JSON;
    }
    await mkdir(dir, { recursive: true });
    const tok = await loadTokenizer(spec === "mistral" ? spec : join(dir, spec));
    if (base) checkTokenizerFits(base, tokenizer, tok.vocabSize);
    // Built under a temp name and renamed: a failed init never leaves a bank.sqlite behind.
    const tmp = tempPathFor(file);
    try {
      const db = new Database(tmp);
      try {
        db.transaction(() => {
          createSchema(db);
          const put = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
          put.run("schema_version", String(SCHEMA_VERSION));
          put.run("tokenizer_spec", spec);
          put.run("tokenizer_name", tok.name);
          put.run("vocab_size", String(tok.vocabSize));
          put.run("created_at", new Date().toISOString());
          put.run("loramix_version", loramixVersion());
          if (base) for (const kv of baseModelMeta(dir, base.name)) put.run(...kv);
        })();
      } finally {
        db.close();
      }
      await rename(tmp, file);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    } finally {
      forgetTemp(tmp);
    }
    return Bank.open(dir);
  }

  static async open(dir: string): Promise<Bank> {
    dir = resolve(dir);
    const file = join(dir, BANK_FILE);
    if (!existsSync(dir)) throw new LoramixError("BANK", `${dir}: no such bank directory`);
    if (!existsSync(file)) {
      throw new LoramixError(
        "BANK",
        `${dir}: not a loramix bank (no ${BANK_FILE}; create one with \`loramix bank init\`)`,
      );
    }
    let db: Database.Database;
    try {
      db = new Database(file, { fileMustExist: true });
      // WAL persists in the file; asking only when needed keeps read-only banks openable.
      if (db.pragma("journal_mode", { simple: true }) !== "wal") db.pragma("journal_mode = WAL");
    } catch (error) {
      throw new LoramixError("BANK", `${file}: cannot open the bank database: ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      db.pragma("foreign_keys = ON");
      // Another loramix process (e.g. `bank index` while `generate` reads) may hold the write lock briefly.
      db.pragma("busy_timeout = 10000");
      checkSchema(db, file);
      return new Bank(dir, db);
    } catch (error) {
      db.close();
      if (error instanceof LoramixError) throw error;
      throw new LoramixError("BANK", `${file}: not a readable loramix bank: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /**
   * The base model's hub id or absolute directory, as generated adapters name it; null when the
   * bank was created without one (adapters then keep what their sources say).
   */
  get baseModel(): string | null {
    const id = this.meta(BASE_MODEL_ID);
    if (id !== undefined) return id;
    const path = this.meta(BASE_MODEL_PATH);
    if (path === undefined) return null;
    // Relative first: a bank moved together with its model. Then where the model was: a bank
    // copied or moved alone, the model left in place.
    const here = resolve(this.dir, path);
    const recorded = this.meta(BASE_MODEL_ABSOLUTE);
    return !existsSync(here) && recorded !== undefined && existsSync(recorded) ? recorded : here;
  }

  /**
   * Why the bank's local base model is not found, or null: the bank was moved or copied without
   * it (neither relative to the bank nor where it was recorded holds it). Generated adapters would
   * name a folder that does not exist, and adapters cannot be checked against the model.
   */
  baseModelMissing(): string | null {
    const path = this.meta(BASE_MODEL_PATH);
    const found = this.baseModel;
    if (path === undefined || found === null || existsSync(found)) return null;
    const recorded = this.meta(BASE_MODEL_ABSOLUTE);
    return (
      `${this.dir}: the bank's base model is not at ${found} (recorded as ${path}, relative to the bank` +
      `${recorded === undefined || recorded === found ? "" : `; not at ${recorded} either, where it was`}): ` +
      "the bank was moved or copied without its model, so adapters made from it name a folder that does not exist; " +
      `put the bank back beside the model, or the model (or a link to it) at ${found}`
    );
  }

  /** Records the base model of a bank made without one; a bank's base model never changes. */
  async setBaseModel(spec: string): Promise<void> {
    const base = await resolveBaseModel(spec);
    const current = this.baseModel;
    if (current !== null && current !== base.name)
      throw new LoramixError("BANK", `${this.dir}: the bank's base model is ${current}, not ${base.name}`);
    checkTokenizerFits(base, this.tokenizer, this.vocabSize);
    for (const kv of baseModelMeta(this.dir, base.name)) this.setMeta(...kv);
  }

  get file(): string {
    return join(this.dir, BANK_FILE);
  }

  /** The layout every adapter of the bank shares; null until the first adapter is added. */
  layout(): AdapterLayout | null {
    const json = this.meta("layout");
    if (json === undefined) return null;
    try {
      return JSON.parse(json) as AdapterLayout;
    } catch (error) {
      throw formatError(this.file, "the stored adapter layout is not valid JSON", error);
    }
  }

  entries(): BankEntry[] {
    const rows = this.db.prepare("SELECT * FROM entries ORDER BY id").all() as EntryRow[];
    return rows.map((row) => this.toEntry(row));
  }

  entry(id: string): BankEntry | undefined {
    const row = this.db.prepare("SELECT * FROM entries WHERE id = ?").get(id) as EntryRow | undefined;
    return row && this.toEntry(row);
  }

  /**
   * Adds or replaces an entry in one transaction. The first adapter fixes the bank's layout; a later
   * one must match it. Checked here again (not only by the caller) because another process may have
   * added the first adapter in the meantime.
   */
  putEntry(
    entry: NewEntry,
    { replace = false, layout }: { replace?: boolean; layout?: AdapterLayout } = {},
  ): void {
    checkEntryId(entry.id);
    if ((entry.adapterPath === null) !== (layout === undefined)) {
      throw new Error("putEntry: an adapter needs its layout, and a dataset-only entry has none");
    }
    this.db.transaction(() => {
      if (!replace && this.entry(entry.id)) {
        const replace = option("replace", true);
        throw new LoramixError(
          "BANK",
          `${this.dir}: entry "${entry.id}" already exists (pass ${replace.text})`,
          {
            options: [replace],
          },
        );
      }
      if (layout) {
        const current = this.layout();
        if (current === null) this.setMeta("layout", JSON.stringify(layout));
        else {
          const differences = compareLayouts(current, layout);
          if (differences.length > 0) {
            throw layoutError(entry.adapterPath ?? entry.id, differences);
          }
        }
      }
      // An upsert keeps a profile whose data hash still matches (a replaced adapter, same dataset).
      this.db
        .prepare(
          `INSERT INTO entries (id, adapter_path, adapter_hash, data_path, data_hash, data_options, metadata, added_at)
           VALUES (@id, @adapter_path, @adapter_hash, @data_path, @data_hash, @data_options, @metadata, @added_at)
           ON CONFLICT(id) DO UPDATE SET adapter_path = excluded.adapter_path, adapter_hash = excluded.adapter_hash,
             data_path = excluded.data_path, data_hash = excluded.data_hash, data_options = excluded.data_options,
             metadata = excluded.metadata, added_at = excluded.added_at`,
        )
        .run({
          id: entry.id,
          adapter_path: entry.adapterPath === null ? null : this.storedPath(entry.adapterPath),
          adapter_hash: entry.adapterHash,
          data_path: this.storedPath(entry.dataPath),
          data_hash: entry.dataHash,
          data_options: JSON.stringify(entry.dataOptions),
          metadata: JSON.stringify(entry.metadata),
          added_at: new Date().toISOString(),
        });
    })();
  }

  /**
   * The entry's profile, only while it matches the entry's current dataset hash and the bank's
   * tokenizer. "both" (SPEC §2) lives in the profiles table; the one-side profiles in the cache,
   * keyed by the same two identities, so that the schema and older loramix versions are unaffected.
   */
  profile(id: string, side: ProfileSide = "both"): Profile | undefined {
    if (side !== "both") {
      const entry = this.entry(id);
      const blob = entry && this.getCache(sideKind(side), sideKey(id, entry.dataHash, this.tokenizerName));
      return blob && this.decodeSideProfile(id, side, blob);
    }
    const row = this.db
      .prepare(
        `SELECT p.* FROM profiles p JOIN entries e ON e.id = p.entry_id
         WHERE p.entry_id = ? AND p.data_hash = e.data_hash AND p.tokenizer = ?`,
      )
      .get(id, this.tokenizerName) as ProfileRow | undefined;
    return row && this.decodeProfile(row);
  }

  /** Record and token counts of every stored profile, fresh or not, by entry id. */
  profileSummaries(): Map<string, ProfileSummary> {
    const rows = this.db
      .prepare(
        `SELECT p.entry_id, p.n_records, p.n_tokens, (p.data_hash = e.data_hash AND p.tokenizer = ?) AS fresh
         FROM profiles p JOIN entries e ON e.id = p.entry_id`,
      )
      .all(this.tokenizerName) as { entry_id: string; n_records: number; n_tokens: number; fresh: number }[];
    return new Map(
      rows.map((r) => [r.entry_id, { nRecords: r.n_records, nTokens: r.n_tokens, fresh: r.fresh === 1 }]),
    );
  }

  /** Ids of entries without a fresh profile of that side, in id order. */
  staleIds(side: ProfileSide = "both"): string[] {
    if (side !== "both")
      return this.entries()
        .filter((e) => this.profile(e.id, side) === undefined)
        .map((e) => e.id);
    const rows = this.db
      .prepare(
        `SELECT e.id FROM entries e LEFT JOIN profiles p
           ON p.entry_id = e.id AND p.data_hash = e.data_hash AND p.tokenizer = ?
         WHERE p.entry_id IS NULL ORDER BY e.id`,
      )
      .all(this.tokenizerName) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /**
   * Stores a profile made from the dataset whose content hash is `dataHash`. Refused when the entry
   * changed meanwhile (a concurrent `add --replace`), so no profile is ever filed under the wrong data.
   */
  putProfile(id: string, profile: Profile, dataHash: string): void {
    if (profile.tokenizer !== this.tokenizerName) {
      throw new LoramixError(
        "TOKENIZER",
        `${this.dir}: profile of "${id}" made with tokenizer ${profile.tokenizer}, the bank uses ${this.tokenizerName}`,
      );
    }
    if (profile.ids.length !== profile.counts.length)
      throw new Error("putProfile: ids and counts differ in length");
    this.db.transaction(() => {
      const entry = this.entry(id);
      if (!entry) throw new LoramixError("BANK", `${this.dir}: no entry "${id}"`);
      if (entry.dataHash !== dataHash) {
        throw new LoramixError(
          "BANK",
          `${entry.dataPath}: dataset of "${id}" changed while it was being profiled`,
        );
      }
      if (profile.side !== "both") {
        const json = JSON.stringify(profileToJson(profile));
        this.putCache(
          sideKind(profile.side),
          sideKey(id, dataHash, this.tokenizerName),
          new TextEncoder().encode(json),
        );
        return;
      }
      this.db
        .prepare(
          `INSERT OR REPLACE INTO profiles
             (entry_id, data_hash, tokenizer, vocab_size, n_records, n_tokens, profile_hash, ids, counts, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id,
          dataHash,
          profile.tokenizer,
          profile.vocabSize,
          profile.nRecords,
          profile.nTokens,
          profile.datasetHash,
          bytesOf(profile.ids),
          bytesOf(profile.counts),
          new Date().toISOString(),
        );
    })();
  }

  private decodeSideProfile(id: string, side: ProfileSide, blob: Uint8Array): Profile {
    const what = `${this.file} (${side}-side profile of "${id}")`;
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(blob));
    } catch (error) {
      throw formatError(what, "not valid JSON", error);
    }
    const profile = profileFromJson(value, what);
    if (profile.side !== side) throw formatError(what, `holds a ${profile.side}-side profile`);
    return profile;
  }

  /** A cached blob (distance matrix, Gram matrix, trained MLP); keys embed the content hashes they depend on. */
  getCache(kind: string, key: string): Uint8Array | undefined {
    const row = this.db.prepare("SELECT value FROM cache WHERE kind = ? AND key = ?").get(kind, key) as
      | { value: Buffer }
      | undefined;
    return row ? new Uint8Array(row.value.buffer, row.value.byteOffset, row.value.byteLength) : undefined;
  }

  putCache(kind: string, key: string, value: Uint8Array): void {
    this.db
      .prepare("INSERT OR REPLACE INTO cache (kind, key, value, created_at) VALUES (?, ?, ?, ?)")
      .run(kind, key, bytesOf(value), new Date().toISOString());
  }

  /** Drops every cached blob of a kind; returns how many. */
  deleteCache(kind: string): number {
    return this.db.prepare("DELETE FROM cache WHERE kind = ?").run(kind).changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private meta(key: string): string | undefined {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  private setMeta(key: string, value: string): void {
    this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(key, value);
  }

  /** Paths inside the bank are stored relative to it, so a moved or copied bank keeps working. */
  private storedPath(path: string): string {
    const abs = resolve(path);
    const rel = relative(this.dir, abs);
    return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel) ? rel : abs;
  }

  private toEntry(row: EntryRow): BankEntry {
    return {
      id: row.id,
      adapterPath: row.adapter_path === null ? null : resolve(this.dir, row.adapter_path),
      adapterHash: row.adapter_hash,
      dataPath: resolve(this.dir, row.data_path),
      dataHash: row.data_hash,
      dataOptions: this.parseJson(row.data_options, `data options of "${row.id}"`) as DatasetOptions,
      metadata: this.parseJson(row.metadata, `metadata of "${row.id}"`) as Record<string, unknown>,
      addedAt: row.added_at,
    };
  }

  private parseJson(text: string, what: string): unknown {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw formatError(this.file, `${what} is not valid JSON`, error);
    }
  }

  private decodeProfile(row: ProfileRow): Profile {
    const n = row.ids.byteLength / 4;
    if (!Number.isInteger(n) || row.counts.byteLength !== n * 8) {
      throw formatError(
        this.file,
        `profile of "${row.entry_id}" has ${row.ids.byteLength} bytes of ids and ${row.counts.byteLength} bytes of counts (want 4 and 8 per token id)`,
      );
    }
    // Copies, because SQLite's buffers need not be aligned for typed-array views.
    const ids = new Uint32Array(n);
    new Uint8Array(ids.buffer).set(row.ids);
    const counts = new Float64Array(n);
    new Uint8Array(counts.buffer).set(row.counts);
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      if (id >= row.vocab_size || (i > 0 && id <= ids[i - 1]!)) {
        throw formatError(
          this.file,
          `profile of "${row.entry_id}": token ids not sorted below ${row.vocab_size}`,
        );
      }
    }
    return {
      tokenizer: row.tokenizer,
      vocabSize: row.vocab_size,
      nRecords: row.n_records,
      nTokens: row.n_tokens,
      ids,
      counts,
      datasetHash: row.profile_hash,
      side: "both",
    };
  }
}

function sideKind(side: ProfileSide): string {
  return `profile-${side}`;
}

function sideKey(id: string, dataHash: string, tokenizer: string): string {
  return `${id}\0${dataHash}\0${tokenizer}`;
}

/** An adapter refused for its layout; `differences` from compareLayouts(bank's layout, the adapter's). */
const BASE_MODEL_ID = "base_model_id";
const BASE_MODEL_PATH = "base_model_path";
const BASE_MODEL_ABSOLUTE = "base_model_absolute_path";

/**
 * A local base model is stored relative to the bank, so a bank moved together with its model still
 * finds it, and as it was given, so a bank copied or moved alone finds it where it stayed.
 */
function baseModelMeta(dir: string, name: string): [string, string][] {
  if (!isAbsolute(name)) return [[BASE_MODEL_ID, name]];
  return [
    [BASE_MODEL_PATH, relative(dir, name) || "."],
    [BASE_MODEL_ABSOLUTE, name],
  ];
}

export function layoutError(adapterPath: string, differences: string[]): LoramixError {
  return new LoramixError(
    "LAYOUT",
    `${adapterPath}: adapter layout differs from the bank's (bank vs this adapter): ${differences.join("; ")}`,
  );
}

/** Typed arrays are stored in the platform's byte order, which is little-endian everywhere Node runs in practice. */
function bytesOf(array: ArrayBufferView): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

let version: string | undefined;
/** From package.json, two levels up from both src/bank and dist/bank. */
export function loramixVersion(): string {
  version ??= (
    JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
  return version;
}

export function initBank(dir: string, options: { tokenizer: string; baseModel?: string }): Promise<Bank> {
  return Bank.init(dir, options);
}

export function openBank(dir: string): Promise<Bank> {
  return Bank.open(dir);
}

/** Runs `work` on a bank given as a Bank or a directory; a bank opened here is closed here. */
export async function withBank<T>(bank: Bank | string, work: (bank: Bank) => Promise<T>): Promise<T> {
  if (typeof bank !== "string") return work(bank);
  const opened = await Bank.open(bank);
  try {
    return await work(opened);
  } finally {
    opened.close();
  }
}
