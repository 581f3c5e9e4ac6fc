import { type AnswerTally, newAnswerTally, tallyAnswer } from "../datasets/emptyAnswers.js";
import type { DatasetSource } from "../datasets/open.js";
import type { DatasetRecord, SplitName } from "../datasets/record.js";
import { type Profile, type ProfileOptions, profileRecords } from "./profile.js";

export interface DatasetProfile {
  profile: Profile;
  /** Records per split in the whole dataset, for messages ("no train records among 12"). */
  counts: Record<SplitName, number>;
  /** The first `keep` records of the split that have an output, in file order. */
  kept: DatasetRecord[];
  /** The split's records with an output, and those whose outputs are all blank. */
  answers: AnswerTally;
}

const KB = 1024;
const MB = 1024 * KB;

/**
 * Profile of one split of a dataset, read as a stream: memory stays at a batch of texts plus the
 * `keep` records asked for, whatever the dataset's size. Progress is in kB or MB read.
 */
export async function profileDataset(
  source: DatasetSource,
  { split = "train", keep = 0, ...options }: ProfileOptions & { split?: SplitName; keep?: number },
): Promise<DatasetProfile> {
  const counts: Record<SplitName, number> = { train: 0, valid: 0, test: 0 };
  const kept: DatasetRecord[] = [];
  const answers = newAnswerTally();
  async function* ofSplit() {
    for await (const { record, split: s } of source.records(options.signal)) {
      counts[s]++;
      if (s !== split) continue;
      tallyAnswer(answers, record);
      if (kept.length < keep && record.output.length > 0) kept.push(record);
      yield record;
    }
  }
  const [scale, unit] = source.bytes >= 10 * MB ? [MB, "MB"] : [KB, "kB"];
  const profile = await profileRecords(ofSplit(), {
    ...options,
    position: () => ({
      done: Math.ceil(source.bytesRead / scale),
      total: Math.ceil(source.bytes / scale),
      unit,
    }),
  });
  return { profile, counts, kept, answers };
}
