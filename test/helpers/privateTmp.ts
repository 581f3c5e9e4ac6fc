import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The test run's own $TMPDIR, inherited by every worker and every CLI a test starts: a run of
 * loramix removes the leftovers of killed runs it finds there and says so on stderr, so a shared
 * /tmp would let the machine's history (or a test that kills a run on purpose) change what another
 * test reads; and what the tests leave there goes with the run.
 */
export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "loramix-tests-"));
  process.env.TMPDIR = dir;
  // Each test file's folder is made in here (fileTmp.ts), whichever worker ran a file before.
  process.env.LORAMIX_TEST_TMP = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
