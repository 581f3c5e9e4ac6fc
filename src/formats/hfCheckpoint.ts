import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { SafetensorsReader, type TensorInfo } from "./safetensors.js";

const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";

/**
 * The weights of a Hugging Face model directory: `model.safetensors`, or the shards that
 * `model.safetensors.index.json` names. A shard name must be a plain file name in the directory
 * (an index from a stranger must not point at ../../secret). Every shard is opened and its header
 * checked up front; tensors are read one at a time.
 */
export class HfCheckpoint {
  private constructor(
    readonly dir: string,
    /** Tensor name → the shard holding it and its header entry. */
    readonly tensors: ReadonlyMap<string, { reader: SafetensorsReader; info: TensorInfo }>,
    private readonly readers: SafetensorsReader[],
  ) {}

  static async open(dir: string): Promise<HfCheckpoint> {
    dir = resolve(dir);
    const files = await shardFiles(dir);
    const readers: SafetensorsReader[] = [];
    try {
      const tensors = new Map<string, { reader: SafetensorsReader; info: TensorInfo }>();
      for (const file of files) {
        const reader = await SafetensorsReader.open(file);
        readers.push(reader);
        for (const [name, info] of reader.header.tensors) {
          if (tensors.has(name)) throw formatError(file, `tensor "${name}" is in two shards`);
          tensors.set(name, { reader, info });
        }
      }
      return new HfCheckpoint(dir, tensors, readers);
    } catch (error) {
      for (const r of readers) await r.close();
      throw error;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** A float tensor as float32, checked against the shape the model's config implies. */
  async readF32(name: string, shape?: readonly number[]): Promise<Float32Array> {
    const found = this.tensors.get(name);
    if (!found) throw formatError(join(this.dir, SINGLE_FILE), `no tensor "${name}"`);
    const { reader, info } = found;
    if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))) {
      throw formatError(
        reader.header.path,
        `tensor "${name}" has shape ${JSON.stringify(info.shape)}, config.json implies ${JSON.stringify(shape)}`,
      );
    }
    return reader.readF32(name);
  }

  async close(): Promise<void> {
    for (const r of this.readers) await r.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function shardFiles(dir: string): Promise<string[]> {
  const single = join(dir, SINGLE_FILE);
  if (existsSync(single)) return [single];
  const indexFile = join(dir, INDEX_FILE);
  if (!existsSync(indexFile)) throw inputError(dir, `no ${SINGLE_FILE} (or ${INDEX_FILE})`);
  let map: unknown;
  try {
    map = (JSON.parse(await readFile(indexFile, "utf8")) as { weight_map?: unknown }).weight_map;
  } catch (error) {
    throw formatError(indexFile, `not valid JSON: ${(error as Error).message}`, error);
  }
  if (typeof map !== "object" || map === null || Array.isArray(map))
    throw formatError(indexFile, 'no "weight_map" object');
  const names = [...new Set(Object.values(map as Record<string, unknown>))];
  if (names.length === 0) throw formatError(indexFile, '"weight_map" names no shard');
  return names.map((shard) => {
    if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\") || shard.startsWith("."))
      throw formatError(indexFile, `shard name ${JSON.stringify(shard)} is not a plain file name`);
    return join(dir, shard);
  });
}
