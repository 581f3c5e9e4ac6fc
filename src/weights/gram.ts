import { availableParallelism } from "node:os";
import { join } from "node:path";
import { restrictMatrix } from "../distances/matrix.js";
import { formatError, LoramixError, throwIfAborted } from "../errors.js";
import { numel } from "../formats/dtypes.js";
import { ADAPTER_WEIGHTS } from "../formats/fileNames.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import { packBlob, unpackBlob } from "../util/blob.js";
import { sha256 } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";
import { startWorker, WorkerChannel } from "../util/workers.js";
import { balanceTileRows, GramAccumulator } from "./gramKernel.js";
import type { GramRequest, GramWorkerData } from "./gramWorker.js";

/** Bytes of float32 rows held per block buffer (two buffers: one computed while the next is read). */
const DEFAULT_BLOCK_BYTES = 128 * 1024 * 1024;
const MAGIC = "loramix-gram";
/** Cache key under which the most recent Gram matrix is also stored, the base for incremental updates. */
export const LATEST_GRAM_KEY = "latest";

/** One adapter's parameters as the Gram matrix sees them: its safetensors file and content hash. */
export interface GramSource {
  file: string;
  hash: string;
}

/** G = ΘΘᵀ over the flattened lora_A/lora_B parameters of distinct adapters (by content hash). */
export interface GramMatrix {
  hashes: string[];
  /** Parameters per adapter (the p of a mean over all parameters). */
  params: number;
  /** hashes.length² values, row-major, symmetric. */
  values: Float64Array;
}

export interface GramOptions {
  /** Gram matrix of a subset of `sources` (by hash) already computed: only new rows/columns are. */
  previous?: GramMatrix;
  /** Worker threads for the products; 1 computes on the calling thread. */
  threads?: number;
  blockBytes?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/**
 * Computes G = ΘΘᵀ streaming: a block of whole tensors (in layout order) of every adapter is read
 * into a reused N×block float32 buffer and x·xᵀ of that block is added into G (float64), so the N×p
 * matrix is never held. Two buffers alternate: while the worker threads multiply one, the next block
 * is read into the other. With `previous`, only the rows of new adapters are multiplied (against
 * all adapters), which costs N_new·N·p instead of N²·p/2.
 */
export async function gramOfAdapters(
  sources: GramSource[],
  tensors: { name: string; shape: number[] }[],
  {
    previous,
    threads = Math.min(2, availableParallelism()),
    blockBytes = DEFAULT_BLOCK_BYTES,
    signal,
    progress,
  }: GramOptions = {},
): Promise<GramMatrix> {
  const unique = [...new Map(sources.map((s) => [s.hash, s])).values()];
  const params = tensors.reduce((s, t) => s + numel(t.shape), 0);
  const known = new Map<string, number>();
  if (previous && previous.params === params) {
    for (const [i, h] of previous.hashes.entries()) known.set(h, i);
  }
  const fresh = unique.filter((s) => !known.has(s.hash));
  const reused = unique.filter((s) => known.has(s.hash));
  const n = unique.length;
  const result: GramMatrix = { hashes: unique.map((s) => s.hash), params, values: new Float64Array(n * n) };
  if (fresh.length > 0) {
    // Rows: the new adapters, zero rows up to a multiple of 4, then the others (only needed as
    // columns): the upper-triangle tiles of the first rows are exactly the new rows and columns.
    const freshRows = roundUp4(fresh.length);
    const order = [...fresh, ...reused];
    const rowOf = new Map<string, number>();
    for (const [i, s] of fresh.entries()) rowOf.set(s.hash, i);
    for (const [i, s] of reused.entries()) rowOf.set(s.hash, freshRows + i);
    const rows = reused.length > 0 ? roundUp4(freshRows + reused.length) : freshRows;
    const g = await multiplyBlocks(order, rowOf, rows, freshRows, tensors, {
      threads,
      blockBytes,
      signal,
      progress,
    });
    for (let a = 0; a < n; a++) {
      for (let b = a; b < n; b++) {
        const ha = result.hashes[a] as string;
        const hb = result.hashes[b] as string;
        const pa = known.get(ha);
        const pb = known.get(hb);
        let v: number;
        if (pa !== undefined && pb !== undefined && previous) {
          v = previous.values[pa * previous.hashes.length + pb] as number;
        } else {
          const ra = rowOf.get(ha) as number;
          const rb = rowOf.get(hb) as number;
          v = g[Math.min(ra, rb) * rows + Math.max(ra, rb)] as number;
        }
        result.values[a * n + b] = v;
        result.values[b * n + a] = v;
      }
    }
  } else if (previous) {
    for (let a = 0; a < n; a++) {
      const pa = known.get(result.hashes[a] as string) as number;
      for (let b = 0; b < n; b++) {
        const pb = known.get(result.hashes[b] as string) as number;
        result.values[a * n + b] = previous.values[pa * previous.hashes.length + pb] as number;
      }
    }
  }
  return result;
}

async function multiplyBlocks(
  order: GramSource[],
  rowOf: Map<string, number>,
  rows: number,
  tileRowLimit: number,
  tensors: { name: string; shape: number[] }[],
  {
    threads,
    blockBytes,
    signal,
    progress,
  }: Required<Pick<GramOptions, "threads" | "blockBytes">> & GramOptions,
): Promise<Float64Array> {
  const largest = Math.max(...tensors.map((t) => numel(t.shape)));
  // Rows a power of two apart alias in the caches and the TLB (measured 20% slower at N=256): pad
  // the row stride by 64 floats.
  const stride = Math.ceil(Math.max(largest, Math.floor(blockBytes / (4 * rows))) / 64) * 64 + 64;
  const blocks: { name: string; size: number; offset: number }[][] = [];
  let current: { name: string; size: number; offset: number }[] = [];
  let used = 0;
  for (const t of tensors) {
    const size = numel(t.shape);
    if (used + size > stride) {
      blocks.push(current);
      current = [];
      used = 0;
    }
    current.push({ name: t.name, size, offset: used });
    used += size;
  }
  if (current.length > 0) blocks.push(current);

  const readers: SafetensorsReader[] = [];
  const workers: WorkerChannel<GramRequest, Float64Array | null>[] = [];
  try {
    for (const s of order) {
      const reader = await SafetensorsReader.open(s.file);
      readers.push(reader);
      for (const t of tensors) {
        const info = reader.header.tensors.get(t.name);
        if (!info) throw formatError(s.file, `has no tensor "${t.name}" of the bank's layout`);
        if (info.shape.join(",") !== t.shape.join(",")) {
          throw new LoramixError(
            "LAYOUT",
            `${s.file}: tensor "${t.name}" has shape [${info.shape}], the bank's layout has [${t.shape}]`,
          );
        }
      }
    }
    const useWorkers = threads > 1;
    const buffers: Float32Array[] = [0, 1].map(
      () => new Float32Array(new SharedArrayBuffer(rows * stride * 4)),
    );
    const parts = balanceTileRows(rows, tileRowLimit, useWorkers ? threads : 1);
    const local = useWorkers ? undefined : new GramAccumulator(rows, parts[0] as number[]);
    if (useWorkers) {
      for (const tileRows of parts) {
        const worker = startWorker(new URL("./gramWorker.js", import.meta.url), {
          workerData: {
            buffers: buffers.map((b) => b.buffer as SharedArrayBuffer),
            rows,
            stride,
            tileRows,
          } satisfies GramWorkerData,
        });
        workers.push(new WorkerChannel<GramRequest, Float64Array | null>(worker));
      }
    }
    const scratch = new Map<number, Float32Array>();
    const fill = async (block: (typeof blocks)[number], x: Float32Array) => {
      for (let r = 0; r < order.length; r++) {
        const s = order[r] as GramSource;
        const reader = readers[r] as SafetensorsReader;
        const row = (rowOf.get(s.hash) as number) * stride;
        for (const t of block) {
          let tmp = scratch.get(t.size);
          if (!tmp) {
            tmp = new Float32Array(t.size);
            scratch.set(t.size, tmp);
          }
          x.set(await reader.readF32(t.name, tmp), row + t.offset);
        }
      }
    };
    const compute = (x: Float32Array, width: number): Promise<void> => {
      if (local) {
        local.add(x, stride, width);
        return Promise.resolve();
      }
      const index = buffers.indexOf(x);
      return Promise.all(workers.map((w) => w.request({ buffer: index, width }))).then(() => undefined);
    };
    const widthOf = (block: (typeof blocks)[number]) => block.reduce((s, t) => s + t.size, 0);
    const start = performance.now();
    let flops = 0;
    if (blocks[0]) await fill(blocks[0], buffers[0] as Float32Array);
    for (let b = 0; b < blocks.length; b++) {
      throwIfAborted(signal);
      const block = blocks[b] as (typeof blocks)[number];
      const x = buffers[b % 2] as Float32Array;
      const next = blocks[b + 1];
      await Promise.all([
        compute(x, widthOf(block)),
        next ? fill(next, buffers[(b + 1) % 2] as Float32Array) : null,
      ]);
      flops += 2 * widthOf(block) * tileRowLimit * (rows - tileRowLimit / 2 + 2);
      const seconds = (performance.now() - start) / 1000;
      progress?.({
        phase: "gram",
        done: b + 1,
        total: blocks.length,
        unit: "blocks",
        detail: `${(flops / seconds / 1e9).toFixed(1)} GFLOP/s`,
      });
    }
    if (local) return local.result();
    const sums = (await Promise.all(workers.map((w) => w.request("finish")))) as Float64Array[];
    const g = sums[0] as Float64Array;
    for (const other of sums.slice(1))
      for (let k = 0; k < g.length; k++) g[k] = (g[k] as number) + (other[k] as number);
    return g;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await Promise.all(readers.map((r) => r.close()));
  }
}

function roundUp4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** Order-independent identity of a set of adapters: the key of their Gram matrix in a bank cache. */
export function gramKey(hashes: string[]): string {
  return sha256(`gram v1\n${[...new Set(hashes)].sort().join("\n")}`);
}

/** Binary form: "loramix-gram" + u32 LE JSON length + JSON {hashes, params} + n² float64 LE. */
export function gramToBuffer(g: GramMatrix): Buffer {
  const values = Buffer.alloc(g.values.length * 8);
  for (let k = 0; k < g.values.length; k++) values.writeDoubleLE(g.values[k] as number, k * 8);
  return packBlob(MAGIC, { version: 1, hashes: g.hashes, params: g.params }, values);
}

export function gramFromBuffer(bytes: Uint8Array, source: string): GramMatrix {
  const { header: head, payload } = unpackBlob(bytes, MAGIC, "Gram matrix", source);
  const { hashes, params } = head;
  if (head.version !== 1 || !Array.isArray(hashes) || !hashes.every((h) => typeof h === "string")) {
    throw formatError(source, "Gram header lacks version 1 and its adapter hashes");
  }
  if (typeof params !== "number" || !Number.isSafeInteger(params) || params < 1) {
    throw formatError(source, `Gram parameter count ${String(params)} is not a positive integer`);
  }
  const n = hashes.length;
  if (payload.length !== n * n * 8) {
    throw formatError(
      source,
      `Gram matrix of ${n} adapters needs ${n * n * 8} bytes, found ${payload.length}`,
    );
  }
  const values = new Float64Array(n * n);
  for (let k = 0; k < values.length; k++) values[k] = payload.readDoubleLE(k * 8);
  return { hashes: hashes as string[], params, values };
}

/** What `bankGram` needs of a bank (structurally satisfied by `Bank`). */
export interface GramBank {
  readonly dir: string;
  entries(): { id: string; adapterPath: string | null; adapterHash: string | null }[];
  layout(): { tensors: { name: string; shape: number[] }[] } | null;
  getCache(
    kind: string,
    key: string,
  ): Buffer | Uint8Array | undefined | null | Promise<Buffer | Uint8Array | undefined | null>;
  putCache(kind: string, key: string, blob: Buffer): unknown;
}

/** The bank's Gram matrix, rows in `ids` order (entries with an adapter, in bank order). */
export interface BankGram extends GramMatrix {
  key: string;
  /** Entry ids, one per row of `entryValues`. */
  ids: string[];
  /** ids.length² values: G between entries (entries sharing an adapter share its values). */
  entryValues: Float64Array;
}

/**
 * G = ΘΘᵀ of the bank's adapters, cached in the bank (kind "gram", key from the adapter hashes).
 * When the cache lacks this set, the most recent Gram matrix is reused and only the rows of the
 * adapters added since are computed.
 */
export async function bankGram(
  bank: GramBank,
  options: Omit<GramOptions, "previous"> = {},
): Promise<BankGram> {
  const entries = bank.entries().filter((e) => e.adapterPath !== null && e.adapterHash !== null);
  const layout = bank.layout();
  if (entries.length === 0 || !layout) {
    throw new LoramixError("BANK", `${bank.dir}: the bank has no adapters, so no Gram matrix`);
  }
  const sources = entries.map((e) => ({
    file: join(e.adapterPath as string, ADAPTER_WEIGHTS),
    hash: e.adapterHash as string,
  }));
  const key = gramKey(sources.map((s) => s.hash));
  const source = `${bank.dir} (cache gram ${key.slice(0, 12)})`;
  const cached = await bank.getCache("gram", key);
  let gram = cached ? gramFromBuffer(cached, source) : undefined;
  if (!gram) {
    const latest = await bank.getCache("gram", LATEST_GRAM_KEY);
    const previous = latest ? gramFromBuffer(latest, `${bank.dir} (cache gram latest)`) : undefined;
    gram = await gramOfAdapters(sources, layout.tensors, { ...options, previous });
    const blob = gramToBuffer(gram);
    await bank.putCache("gram", key, blob);
    await bank.putCache("gram", LATEST_GRAM_KEY, blob);
  }
  // Entries sharing an adapter share its row: the matrix over hashes, expanded to one row per entry.
  const entryValues = restrictMatrix(
    { ids: gram.hashes, values: gram.values },
    entries.map((e) => e.adapterHash as string),
    source,
  );
  return { ...gram, key, ids: entries.map((e) => e.id), entryValues };
}
