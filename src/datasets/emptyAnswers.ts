import { inputError } from "../errors.js";
import type { DatasetRecord } from "./record.js";

/** Of a split's records with an output, how many have only blank ones (`""`, spaces). */
export interface AnswerTally {
  withOutput: number;
  empty: number;
}

export function newAnswerTally(): AnswerTally {
  return { withOutput: 0, empty: 0 };
}

/** The tally of a split held in memory. */
export function tallyAnswers(records: Iterable<DatasetRecord>): AnswerTally {
  const tally = newAnswerTally();
  for (const record of records) tallyAnswer(tally, record);
  return tally;
}

/** Counts one record into the tally. */
export function tallyAnswer(tally: AnswerTally, record: DatasetRecord): void {
  if (record.output.length === 0) return;
  tally.withOutput++;
  if (record.output.every((o) => o.trim() === "")) tally.empty++;
}

/**
 * The train records' answers, before an adapter is fitted to them: all blank is refused (a model
 * trained or scored on them learns to answer nothing, and the run would still succeed); some blank
 * gives a warning to show. `file` is the dataset, named in both.
 */
export function checkAnswers(file: string, { withOutput, empty }: AnswerTally): string | null {
  if (withOutput > 0 && empty === withOutput)
    throw inputError(
      file,
      `every train record's output is empty (${empty} of ${withOutput}): an adapter fitted to them would answer nothing; give records with their answers (is the output field the right one?)`,
    );
  if (empty === 0) return null;
  return `${file}: ${empty} of ${withOutput} train records have an empty output; an adapter fitted to them learns to answer nothing to inputs like theirs`;
}
