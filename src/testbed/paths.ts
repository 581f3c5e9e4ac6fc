import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HF_CONFIG } from "../formats/fileNames.js";

/** The repository (or installed package) root: two levels above both src/testbed and dist/testbed. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The shipped testbed directory (adapters, bank.sqlite, TASKS.md, references.json). */
export const DEFAULT_TESTBED = join(PACKAGE_ROOT, "testbed");

/**
 * The read-only data folder beside the repository. The testbed never copies the model or the
 * task files into the repository; `LORAMIX_SHARED` points elsewhere when the layout differs.
 */
export function sharedDir(): string {
  return resolve(process.env.LORAMIX_SHARED ?? join(PACKAGE_ROOT, "../shared"));
}

/** File and directory names inside a testbed directory. */
export const TESTBED_FILES = {
  adapters: "adapters",
  /**
   * A relative symlink to ../shared/data/sni. Bank entries point at task files through it, so the
   * bank stores them relative to itself and a clone anywhere resolves them (src/bank keeps paths
   * inside the bank relative and everything else absolute).
   */
  data: "sni",
  selection: "selection.json",
  references: "references.json",
  tasks: "TASKS.md",
  build: "build.json",
} as const;

export interface TestbedPaths {
  dir: string;
  model: string;
  sni: string;
}

export function testbedPaths(dir = DEFAULT_TESTBED, shared = sharedDir()): TestbedPaths {
  return { dir: resolve(dir), model: join(shared, "models/tinystories-656k"), sni: join(shared, "data/sni") };
}

export function hasModel(paths: TestbedPaths): boolean {
  return existsSync(join(paths.model, HF_CONFIG));
}
