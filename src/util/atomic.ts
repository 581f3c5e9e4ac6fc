import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { LoramixError, option } from "../errors.js";
import {
  ADAPTER_CONFIG,
  ADAPTER_RECORD,
  METRICS_FILE,
  PREDICTIONS_FILE,
  TRAIN_RECORD,
} from "../formats/fileNames.js";
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

/**
 * What loramix writes as a single file (a profile, a distance matrix, a GGUF): how to say it, and
 * how to recognise one it wrote, from the file's content. The file rule is the folder rule's:
 * `--out` may name a missing path or such a file, and nothing else is ever replaced.
 */
export interface OutFileKind {
  /** As a message says it: "a profile", "a GGUF adapter", ... */
  what: string;
  written: (path: string) => Promise<boolean>;
}

/** The first `n` bytes of a file as text, for recognising what wrote it. */
export async function filePrefix(path: string, n: number): Promise<string> {
  const handle = await open(path, "r");
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

/** The `checkOutDir` of a file output: a missing path, or a file loramix wrote as this kind. */
export async function checkOutFile(path: string, kind: OutFileKind): Promise<void> {
  await sweepBeside(path);
  const info = await lstat(path).catch(() => null);
  if (info === null) return;
  const out = option("out");
  if (!info.isFile())
    throw new LoramixError(
      "INPUT",
      `${path}: exists and is not a file; loramix writes ${kind.what} there, so give ${out.text} a new path`,
      { options: [out] },
    );
  if (await kind.written(path).catch(() => false)) return;
  throw new LoramixError(
    "INPUT",
    `${path}: the file is not ${kind.what} loramix wrote; give ${out.text} a new path, or remove the file yourself`,
    { options: [out] },
  );
}

/** `writeFileAtomic` under the out-file rule (checked again at the end, as `writeDirAtomic` does). */
export async function writeOutFile(
  path: string,
  data: string | Uint8Array,
  kind: OutFileKind,
): Promise<void> {
  await checkOutFile(path, kind);
  await writeFileAtomic(path, data);
}

/** Written into every folder loramix outputs, so that a rerun knows it may replace it. */
export const OUTPUT_MARKER = ".loramix-output";

/** What loramix writes as a folder: an adapter (generate, train), a loo report, a demo report, an evaluation, a testbed. */
export type OutputKind = "adapter" | "loo" | "demo" | "eval" | "testbed";

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
  // Adapters written before the marker existed carry loramix.json or the training sidecar;
  // evaluations, their two files with loramix's metrics.
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.includes(ADAPTER_CONFIG) && names.some((n) => n === ADAPTER_RECORD || n === TRAIN_RECORD))
    return "adapter";
  if (names.length === 2 && names.includes(PREDICTIONS_FILE) && names.includes(METRICS_FILE)) {
    const metrics = await readFile(join(dir, METRICS_FILE), "utf8").catch(() => "");
    if (metrics.includes('"std": "population (ddof 0) over records"')) return "eval";
  }
  return null;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a");

/**
 * `--out` may name a missing path, an empty folder, or a previous loramix output of the same
 * kind (its marker, or `known` recognising its file names); anything else (a file, a folder of
 * the user's) is refused, never removed. Called before long work starts and again by `writeDirAtomic`.
 */
export async function checkOutDir(
  dir: string,
  kind: OutputKind,
  known?: (names: string[]) => boolean,
): Promise<void> {
  await sweepBeside(dir);
  const info = await lstat(dir).catch(() => null);
  if (info === null) return;
  const out = option("out");
  if (!info.isDirectory()) {
    throw new LoramixError(
      "INPUT",
      `${dir}: exists and is not a folder; loramix writes ${article(kind)} ${kind} folder there, so give ${out.text} a new path`,
      { options: [out] },
    );
  }
  const names = await readdir(dir);
  if (names.length === 0) return;
  const found = await markerKind(dir);
  if (found === kind || (found === null && known?.(names))) return;
  throw new LoramixError(
    "INPUT",
    found === null
      ? `${dir}: the folder holds files loramix did not write (${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""}); give ${out.text} a new or empty folder, or remove it yourself`
      : `${dir}: holds a loramix ${found} output, not ${article(kind)} ${kind}; give ${out.text} another folder`,
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
