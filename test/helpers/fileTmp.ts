import { mkdtempSync } from "node:fs";
import { join } from "node:path";

/**
 * Each test file's own $TMPDIR, inside the run's (privateTmp.ts, which removes it at the end): a
 * file's CLI runs remove the leftovers of dead runs they find there and say so on stderr, and a
 * test file that ended with scratch of its own in flight (its worker gone) must not add a line to
 * what another file's test reads.
 */
const root = process.env.LORAMIX_TEST_TMP;
if (root === undefined) throw new Error("test/helpers/privateTmp.ts did not run: it is vitest's globalSetup");
process.env.TMPDIR = mkdtempSync(join(root, "file-"));
