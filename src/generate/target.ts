import { readFile, stat } from "node:fs/promises";
import { extname, resolve } from "node:path";
import type { Bank } from "../bank/store.js";
import { checkAnswers } from "../datasets/emptyAnswers.js";
import type { DatasetOptions } from "../datasets/load.js";
import { openDataset } from "../datasets/open.js";
import type { DatasetRecord } from "../datasets/record.js";
import { inputError, LoramixError, option } from "../errors.js";
import { type Profile, type ProfileSide, profileFromJson } from "../profiles/profile.js";
import { profileDataset } from "../profiles/profileDataset.js";
import { hashPath } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";

/** What the target was given as, for loramix.json. */
export interface TargetSource {
  path: string;
  kind: "dataset" | "profile";
  /** SHA-256 of the file or directory as given. */
  hash: string;
  /** The profile's hash of its profiled texts (SPEC §2). */
  profileHash: string;
  /** Train records profiled, of `datasetRecords` in the whole dataset (null for a profile.json). */
  records: number;
  datasetRecords: number | null;
  tokens: number;
}

/** A profile.json as `loramix profile` writes it: an object with the profile's own fields. */
function looksLikeProfile(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return "counts" in v && "tokenizer" in v && "vocabSize" in v && !("Instances" in v);
}

/**
 * The profile in `path` when it is a profile.json (undefined for any other file: a dataset), checked
 * against the bank's tokenizer and the side asked for.
 */
async function readProfileFile(bank: Bank, path: string, side: ProfileSide): Promise<Profile | undefined> {
  if (extname(path).toLowerCase() !== ".json") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch {
    // Not JSON at all: loadDataset reports it with the dataset reader's message.
  }
  if (!looksLikeProfile(parsed)) return undefined;
  const profile = profileFromJson(parsed, path);
  if (profile.tokenizer !== bank.tokenizerName || profile.vocabSize !== bank.vocabSize) {
    throw new LoramixError(
      "TOKENIZER",
      `${path}: profile made with tokenizer ${profile.tokenizer} (vocabulary ${profile.vocabSize}), but the bank ${bank.dir} uses ${bank.tokenizerName} (vocabulary ${bank.vocabSize}); profile the dataset with the bank's tokenizer or pass the dataset itself`,
    );
  }
  if (profile.side !== side) {
    const wanted = option("side", side);
    throw new LoramixError(
      "INPUT",
      `${path}: a ${profile.side}-side profile, but ${side}-side distances were asked for; profile with ${wanted.text} or pass the dataset itself`,
      { options: [wanted] },
    );
  }
  return profile;
}

/**
 * The target's profile with the bank's tokenizer (SPEC §2, train split): profiled here from a
 * dataset, or read from a profile.json, which must have been made with the bank's tokenizer.
 * `train` holds the first `keep` train records with an output (null for a profile.json), for
 * scoring candidates on; the rest of the dataset is streamed, never held.
 */
export async function targetProfile(
  bank: Bank,
  data: string,
  {
    dataOptions = {},
    side = "both",
    keep = 0,
    threads,
    signal,
    progress,
  }: {
    dataOptions?: DatasetOptions;
    side?: ProfileSide;
    keep?: number;
    threads?: number;
    signal?: AbortSignal;
    progress?: ProgressSink;
  } = {},
): Promise<{
  profile: Profile;
  source: TargetSource;
  train: DatasetRecord[] | null;
  /** Said about the target's records (some with an empty output); null when all is well. */
  warning: string | null;
}> {
  const path = resolve(data);
  const info = await stat(path).catch(() => null);
  if (!info) throw inputError(path, "no such dataset or profile file");
  let profile = info.isFile() ? await readProfileFile(bank, path, side) : undefined;
  const kind = profile ? "profile" : "dataset";
  let train: DatasetRecord[] | null = null;
  let datasetRecords: number | null = null;
  let warning: string | null = null;
  if (!profile) {
    const streamed = await profileDataset(await openDataset(path, dataOptions), {
      keep,
      tokenizer: bank.tokenizer,
      side,
      threads,
      signal,
      progress,
    });
    const { counts } = streamed;
    profile = streamed.profile;
    train = streamed.kept;
    datasetRecords = counts.train + counts.valid + counts.test;
    if (profile.nRecords === 0) {
      throw inputError(path, `no train records among the dataset's ${datasetRecords} (SPEC §1 split)`);
    }
    warning = checkAnswers(path, streamed.answers);
  }
  if (profile.nTokens === 0) throw inputError(path, "the target's profile has no tokens");
  return {
    profile,
    train,
    warning,
    source: {
      path,
      kind,
      hash: await hashPath(path, signal),
      profileHash: profile.datasetHash,
      records: profile.nRecords,
      datasetRecords,
      tokens: profile.nTokens,
    },
  };
}
