import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** A sibling temp path: same directory, so the final rename never crosses file systems. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/**
 * Writes a file so that readers see either the old content or the whole new one, never a part:
 * the bytes go to a temp file beside it, are flushed, and the temp file is renamed over the target.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const handle = await open(tmp, "w");
  try {
    if (typeof data === "string" || data instanceof Uint8Array) {
      await handle.writeFile(data);
    } else {
      for await (const chunk of data as AsyncIterable<Uint8Array>) await handle.write(chunk);
    }
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Builds a directory atomically: `fill` writes into a temp directory beside `dir`, which then
 * replaces `dir` (an existing `dir` is moved aside first and removed only after the swap).
 */
export async function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  const tmp = tempPathFor(dir);
  await mkdir(tmp);
  try {
    await fill(tmp);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  const old = tempPathFor(dir);
  let moved = false;
  try {
    await rename(dir, old);
    moved = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      await rm(tmp, { recursive: true, force: true });
      throw error;
    }
  }
  await rename(tmp, dir);
  if (moved) await rm(old, { recursive: true, force: true });
}
