import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { LoramixError, throwIfAborted } from "../errors.js";

/** SHA-256 of a file, streamed: bank files can be far larger than we want in memory. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  // Checked per chunk rather than handed to the stream: each stream given the signal adds an abort
  // listener to it, and many files hashed side by side exceed Node's listener warning limit.
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    throwIfAborted(signal);
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/**
 * The files under `dir` (sorted absolute paths), hidden ones skipped. Symlinks are followed: Hugging
 * Face cache snapshots are links to the blobs that hold the bytes. A directory link back to a folder
 * being walked (a loop) is refused rather than followed forever.
 */
export async function listFiles(dir: string, signal?: AbortSignal): Promise<string[]> {
  const files: string[] = [];
  async function walk(d: string, ancestors: ReadonlySet<string>): Promise<void> {
    const here = await realpath(d);
    if (ancestors.has(here)) {
      throw new LoramixError("INPUT", `${d}: symbolic link loop (leads back to ${here}); remove the link`);
    }
    const inside = new Set(ancestors).add(here);
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name.startsWith(".")) continue;
      throwIfAborted(signal);
      const p = join(d, entry.name);
      const kind = entry.isSymbolicLink() ? await stat(p).catch(() => null) : entry;
      if (kind?.isDirectory()) await walk(p, inside);
      else if (kind?.isFile()) files.push(p);
    }
  }
  await walk(dir, new Set());
  return files.sort();
}

/** SHA-256 over a directory's files: their sorted relative paths and contents. */
export async function hashDirectory(dir: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  for (const f of await listFiles(dir, signal)) {
    hash.update(`${relative(dir, f)}\0${await hashFile(f, signal)}\n`);
  }
  return hash.digest("hex");
}

/**
 * Names, sizes and modification times of a file or a directory's files: unchanged fingerprint,
 * unchanged bytes in practice, at the price of a few stat calls instead of reading everything.
 */
export async function statFingerprint(path: string, signal?: AbortSignal): Promise<string> {
  const info = await stat(path);
  const files = info.isDirectory() ? await listFiles(path, signal) : [path];
  const parts: string[] = [];
  for (const f of files) {
    const s = await stat(f);
    parts.push(`${relative(path, f)}\0${s.size}\0${s.mtimeMs}`);
  }
  return sha256(parts.join("\n"));
}

/** Content hash of a file or a directory. */
export async function hashPath(path: string, signal?: AbortSignal): Promise<string> {
  return (await stat(path)).isDirectory() ? hashDirectory(path, signal) : hashFile(path, signal);
}

export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
