import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { LoramixError, option } from "../errors.js";
import { ADAPTER_CONFIG, ADAPTER_RECORD, TRAIN_RECORD } from "../formats/fileNames.js";
import { RUN_TAG } from "./runTag.js";
import { forgetTemp, trackTemp } from "./scratch.js";
import { sweepBeside } from "./sweep.js";

/**
 * A sibling temp path, `.NAME.tmp-<run tag>-<random>`: same directory, so the final rename never
 * crosses file systems; tracked, so a forced exit removes it, and tagged, so that after a kill the
 * next run writing `path` does (sweep.ts).
 */
export function tempPathFor(path: string): string {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${RUN_TAG}-${randomBytes(4).toString("hex")}`);
  trackTemp(tmp);
  return tmp;
}

/** Where `writeDirAtomic` sets an old output aside; a forced exit or a later sweep moves it back if the new one never landed. */
function asidePathFor(path: string): string {
  const old = join(dirname(path), `.${basename(path)}.old-${RUN_TAG}-${randomBytes(4).toString("hex")}`);
  trackTemp(old, path);
  return old;
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
  await sweepBeside(path);
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
  } finally {
    forgetTemp(tmp);
  }
}

/** Written into every folder loramix outputs, so that a rerun knows it may replace it. */
export const OUTPUT_MARKER = ".loramix-output";

/** What loramix writes as a folder: an adapter (generate, train), a loo report, a demo report. */
export type OutputKind = "adapter" | "loo" | "demo";

async function markerKind(dir: string): Promise<string | null> {
  const text = await readFile(join(dir, OUTPUT_MARKER), "utf8").catch(() => null);
  if (text !== null) {
    try {
      const kind = (JSON.parse(text) as { kind?: unknown }).kind;
      return typeof kind === "string" ? kind : null;
    } catch {
      return null;
    }
  }
  // Adapters written before the marker existed carry loramix.json or the training sidecar.
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.includes(ADAPTER_CONFIG) && names.some((n) => n === ADAPTER_RECORD || n === TRAIN_RECORD))
    return "adapter";
  return null;
}

/**
 * `--out` may name a missing path, an empty folder, or a previous loramix output of the same
 * kind; anything else (a file, a folder of the user's) is refused, never removed. Called before
 * long work starts and again by `writeDirAtomic`.
 */
export async function checkOutDir(dir: string, kind: OutputKind): Promise<void> {
  await sweepBeside(dir);
  const info = await lstat(dir).catch(() => null);
  if (info === null) return;
  if (!info.isDirectory()) {
    throw new LoramixError(
      "INPUT",
      `${dir}: exists and is not a folder; loramix writes a ${kind} folder there, so give --out a new path`,
    );
  }
  const names = await readdir(dir);
  if (names.length === 0) return;
  const found = await markerKind(dir);
  if (found === kind) return;
  const out = option("out");
  throw new LoramixError(
    "INPUT",
    found === null
      ? `${dir}: the folder holds files loramix did not write (${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""}); give ${out.text} a new or empty folder, or remove it yourself`
      : `${dir}: holds a loramix ${found} output, not a ${kind}; give ${out.text} another folder`,
    { options: [out] },
  );
}

/**
 * Builds a directory atomically: `fill` writes into a temp directory beside `dir`, which then
 * replaces `dir` (an existing `dir`, which `checkOutDir` allows, is moved aside first and removed
 * only after the swap).
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmpDir: string) => Promise<void>,
  kind: OutputKind,
): Promise<void> {
  await checkOutDir(dir, kind);
  await mkdir(dirname(dir), { recursive: true });
  const tmp = tempPathFor(dir);
  await mkdir(tmp);
  try {
    await fill(tmp);
    await writeFile(join(tmp, OUTPUT_MARKER), `${JSON.stringify({ kind })}\n`);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    forgetTemp(tmp);
    throw error;
  }
  const old = asidePathFor(dir);
  let moved = false;
  try {
    await rename(dir, old);
    moved = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      await rm(tmp, { recursive: true, force: true });
      forgetTemp(tmp);
      forgetTemp(old);
      throw error;
    }
  }
  // The commit point: from here on the new output is in place.
  await rename(tmp, dir);
  forgetTemp(tmp);
  if (moved) await rm(old, { recursive: true, force: true });
  forgetTemp(old);
}
