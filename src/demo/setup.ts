import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BANK_FILE } from "../bank/schema.js";
import { Bank, type BankEntry } from "../bank/store.js";
import { LoramixError, usageError } from "../errors.js";
import { hasModel, TESTBED_FILES, type TestbedPaths, testbedPaths } from "../testbed/paths.js";
import { DEFAULT_EVAL, type EvalSettings } from "../testbed/references.js";
import { familyOfTask, type TaskSelection } from "../testbed/tasks.js";

/** What every step of the demo reads: the opened testbed bank, its candidates and the targets. */
export interface DemoSetup {
  paths: TestbedPaths;
  bank: Bank;
  /** The bank's entries with an adapter (the candidates), bank order. */
  entries: BankEntry[];
  ids: string[];
  /** Entry id → its row and column in every n × n matrix. */
  column: Map<string, number>;
  targets: string[];
  /** How the targets were chosen, for the notes. */
  targetRule: "given" | "all" | "held-out";
  familyOf: Map<string, string>;
  settings: EvalSettings;
}

/** Checks the testbed and the options, and opens its bank (the caller closes `setup.bank`). */
export async function openDemoSetup({
  testbed,
  shared,
  targets: explicit,
  all,
  limit,
  maxNewTokens,
}: {
  testbed: string;
  shared?: string;
  targets?: string[];
  all: boolean;
  limit: number;
  maxNewTokens: number;
}): Promise<DemoSetup> {
  const paths = testbedPaths(testbed, shared);
  const selectionFile = join(paths.dir, TESTBED_FILES.selection);
  if (!existsSync(join(paths.dir, BANK_FILE)) || !existsSync(selectionFile)) {
    throw new LoramixError("BANK", `${paths.dir}: not a built testbed (run \`loramix testbed build\`)`);
  }
  if (!hasModel(paths))
    throw new LoramixError("INPUT", `${paths.model}: the TinyStories-656K model is missing`);
  if (!(Number.isInteger(limit) && limit >= 1))
    throw usageError(`limit must be a positive integer, got ${limit}`);
  const selection = JSON.parse(await readFile(selectionFile, "utf8")) as TaskSelection;
  const bank = await Bank.open(paths.dir);
  try {
    const entries = bank.entries().filter((e) => e.adapterPath !== null);
    const ids = entries.map((e) => e.id);
    const column = new Map(ids.map((id, j) => [id, j]));
    const targets = explicit ?? (all ? ids : selection.heldOut);
    if (targets.length === 0) throw usageError("no target tasks");
    for (const t of targets)
      if (!column.has(t)) throw usageError(`task "${t}" is not in the testbed's bank ${paths.dir}`);
    if (ids.length < 3)
      throw new LoramixError(
        "BANK",
        `${paths.dir}: the demo needs at least 3 adapters, the bank has ${ids.length}`,
      );
    return {
      paths,
      bank,
      entries,
      ids,
      column,
      targets,
      targetRule: explicit ? "given" : all ? "all" : "held-out",
      familyOf: familyOfTask(selection),
      settings: { ...DEFAULT_EVAL, limit, maxNewTokens },
    };
  } catch (error) {
    bank.close();
    throw error;
  }
}

/** Row `task` of an n × n matrix over the setup's candidates. */
export function targetRow(setup: DemoSetup, values: Float64Array, task: string): Float64Array {
  const n = setup.ids.length;
  const i = setup.column.get(task) as number;
  return values.subarray(i * n, (i + 1) * n);
}
