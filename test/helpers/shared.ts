import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repo root, from this file's place in test/helpers/. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** ../shared beside the repo: real data no one here wrote. Its absence fails loudly, never skips. */
export const SHARED = resolve(REPO, "../shared");
if (!existsSync(join(SHARED, "SPEC.md"))) {
  throw new Error(`tests need the shared folder at ${SHARED} (read-only data beside the repo)`);
}
export const SNI_DIR = join(SHARED, "data/sni");
export const TINY_MODEL = join(SHARED, "models/tinystories-656k");
export const PEFT_FIXTURES = join(SHARED, "fixtures/peft");
export const MISTRAL_TOKENIZER_MODEL = join(SHARED, "tokenizers/mistral/tokenizer.model");

/** A fresh temp directory, removed by the returned cleanup. */
export async function tempDir(
  prefix = "loramix-test-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
