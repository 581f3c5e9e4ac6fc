import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, join, resolve } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { hfToGguf } from "../convert/hfToGguf.js";
import { peftToGguf } from "../convert/peftToGguf.js";
import { formatError, inputError, LoramixError, option, throwIfAborted, usageError } from "../errors.js";
import { TOKENIZER_JSON } from "../formats/fileNames.js";
import { checkGgufForLlama } from "../formats/ggufRead.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { removeScratch, scratchFile } from "../util/scratch.js";
import type { CompletionOptions, Generation, InferenceBackend } from "./backend.js";
import { GgufTokenizer, tokenizesAnyText } from "./ggufTokenizer.js";

export interface LlamaBackendOptions {
  /** A GGUF file, or a Hugging Face Llama directory (converted to a temporary GGUF). */
  model: string;
  /**
   * tokenizer.json or its directory, or "mistral"; defaults to `model` when that is a directory,
   * and to the GGUF's own vocabulary (run by llama.cpp) when it is a file.
   */
  tokenizer?: string;
  /** The tokenizer for a GGUF whose own vocabulary llama.cpp cannot run on any text (no byte pieces). */
  fallbackTokenizer?: string;
  /** CPU threads per evaluation (default: every core of the machine). */
  threads?: number;
  /** Tokens per context (prompt + generation); default: the context the model was trained with. */
  contextSize?: number;
  /** Told when the context asked for exceeds the model's trained context (positions it never saw). */
  warn?: (message: string) => void;
  /**
   * "f16" is llama.cpp's default (half the memory). "f32" keeps the attention cache in float32
   * and turns flash attention off, which makes log-probabilities match a float64 reference to
   * < 1e-3; with "f16" they differ by up to ~6e-3 on TinyStories-656K (measured).
   */
  kvCache?: "f16" | "f32";
}

export interface AdapterOptions {
  /** llama.cpp's adapter scale, multiplying alpha / r (default 1). */
  scale?: number;
}

/** Generated ids back to text, special tokens left out. */
type Decode = (ids: number[]) => string;

/**
 * llama.cpp (through node-llama-cpp) on the CPU. Prompts are tokenized with the model's tokenizer
 * (a tokenizer.json in TypeScript, or the GGUF's own vocabulary in llama.cpp), with BOS, and fed
 * as ids; output ids are decoded by the same tokenizer. Decoding is greedy.
 *
 * The base model is loaded once; `withAdapter` gives a backend with its own context for one LoRA
 * (a GGUF adapter, or a PEFT directory converted to a temporary GGUF). `dispose` frees contexts,
 * the model and the temporary files.
 */
export class LlamaBackend implements InferenceBackend {
  readonly name: string;
  private readonly adapters = new Map<string, LlamaAdapterBackend>();
  /** The temporary GGUF converted for an adapter key, removed when the adapter is released. */
  private readonly adapterFiles = new Map<string, string>();
  /** GGUFs converted for scoring by `adapterFile`, by PEFT directory. */
  private readonly converted = new Map<string, string>();
  /** Seconds `adapterFile` spent converting PEFT directories to GGUF. */
  convertSeconds = 0;
  private base: LlamaAdapterBackend | undefined;
  private disposed = false;

  private constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly tokenizer: Tokenizer,
    private readonly decode: Decode,
    readonly modelFile: string,
    modelSource: string,
    private readonly threads: number,
    readonly contextSize: number,
    private readonly kvCache: "f16" | "f32",
    private readonly tempFiles: string[],
  ) {
    this.name = `llama.cpp:${basename(modelSource)}`;
  }

  get endText(): string | null {
    return this.tokenizer.eosText;
  }

  /** The model's end-of-sequence id (GGUF metadata), which training appends to every output. */
  get eosId(): number | null {
    return this.model.tokens.eos ?? null;
  }

  static async load({
    model,
    tokenizer,
    fallbackTokenizer,
    threads = availableParallelism(),
    contextSize,
    kvCache = "f16",
    warn,
  }: LlamaBackendOptions): Promise<LlamaBackend> {
    if (!Number.isInteger(threads) || threads < 1)
      throw usageError(`threads must be a positive integer, got ${threads}`);
    const source = resolve(model);
    const info = await stat(source).catch(() => undefined);
    if (info === undefined) throw inputError(source, "no such model file or directory");
    const tokenizerSpec = tokenizer ?? (info.isDirectory() ? source : undefined);
    let tok = tokenizerSpec === undefined ? undefined : await loadTokenizer(tokenizerSpec);
    let hfDecode = tok === undefined || tok.spec === "mistral" ? undefined : await loadDecoder(tok.spec);
    const tempFiles: string[] = [];
    let file = source;
    if (info.isDirectory()) {
      file = tempGgufPath(source);
      tempFiles.push(file);
      await hfToGguf({ modelDir: source, out: file });
    } else await checkGgufForLlama(file, "model");
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    // llama.cpp's own lines would land on stderr before loramix's one-line error; the last ones
    // are kept and quoted in that error instead.
    const recent: string[] = [];
    const llama = await getLlama({
      gpu: false,
      build: "never",
      maxThreads: threads,
      logLevel: LlamaLogLevel.error,
      logger: (_level, message) => {
        const line = message.replace(/\s+/g, " ").trim();
        if (line !== "") recent.push(line);
        if (recent.length > 2) recent.shift();
      },
      progressLogs: false,
    });
    try {
      // Read, not mapped: llama.cpp repacks quantized weights for the CPU into memory of its own,
      // and the mapped file's pages stayed resident beside them (a 4.1 GB Mistral-7B Q4_0: 7.7 GB
      // resident mapped, 4.0 GB read; the same speed).
      const m = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: false });
      const trained = m.trainContextSize;
      // node-llama-cpp nests dotted keys: "loramix.synthetic" is metadata.loramix.synthetic.
      if ((m.fileInfo.metadata as { loramix?: { synthetic?: unknown } }).loramix?.synthetic === true)
        warn?.(
          `${source}: a synthetic model (loramix synth-model: random weights): its outputs are noise, its speed is real`,
        );
      if (contextSize !== undefined && contextSize > trained) {
        warn?.(
          `${source}: a context of ${contextSize} tokens exceeds the ${trained} the model was trained with; ` +
            "positions beyond it give unreliable output",
        );
      }
      const size = contextSize ?? trained;
      const own = new GgufTokenizer(m, file);
      if (tok === undefined && !tokenizesAnyText(m)) {
        if (fallbackTokenizer === undefined)
          throw usageError(
            `${source}: its vocabulary has no byte pieces, without which llama.cpp cannot tokenize every text; give ${option("tokenizer").text} (the model's tokenizer.json)`,
            [option("tokenizer")],
          );
        tok = await loadTokenizer(fallbackTokenizer);
        hfDecode = tok.spec === "mistral" ? undefined : await loadDecoder(tok.spec);
      }
      return new LlamaBackend(
        llama,
        m,
        tok ?? own,
        hfDecode ?? ((ids) => own.decode(ids)),
        file,
        source,
        threads,
        size,
        kvCache,
        tempFiles,
      );
    } catch (error) {
      await llama.dispose();
      for (const f of tempFiles) await removeScratch(f);
      if (error instanceof LoramixError) throw error;
      throw new LoramixError(
        "BACKEND",
        `${file}: llama.cpp cannot load the model: ${(error as Error).message}${recent.length > 0 ? ` (llama.cpp: ${recent.join("; ")})` : ""}`,
        { cause: error },
      );
    }
  }

  /** A backend for the base model with one LoRA; the same adapter path returns the same backend. */
  async withAdapter(adapter: string, { scale = 1 }: AdapterOptions = {}): Promise<LlamaAdapterBackend> {
    if (!Number.isFinite(scale)) throw usageError(`LoRA scale ${scale} is not a finite number`);
    const source = resolve(adapter);
    const key = `${source}\0${scale}`;
    const known = this.adapters.get(key);
    if (known !== undefined) return known;
    const info = await stat(source).catch(() => undefined);
    if (info === undefined) throw inputError(source, "no such adapter file or directory");
    let file = source;
    if (info.isDirectory()) {
      file = tempGgufPath(source);
      this.tempFiles.push(file);
      this.adapterFiles.set(key, file);
      await peftToGguf({ adapterDir: source, base: this.modelFile, out: file });
    } else await checkGgufForLlama(file, "adapter");
    const backend = await this.createContext({ filePath: file, scale }, `${this.name}+${basename(source)}`);
    this.adapters.set(key, backend);
    return backend;
  }

  /** Frees the context (and temporary GGUF) of an adapter given to `withAdapter`, e.g. after scoring it. */
  async releaseAdapter(adapter: string, { scale = 1 }: AdapterOptions = {}): Promise<void> {
    const key = `${resolve(adapter)}\0${scale}`;
    const backend = this.adapters.get(key);
    if (backend === undefined) return;
    this.adapters.delete(key);
    await backend.dispose();
    const file = this.adapterFiles.get(key);
    if (file !== undefined) {
      this.adapterFiles.delete(key);
      this.tempFiles.splice(this.tempFiles.indexOf(file), 1);
      await removeScratch(file);
    }
  }

  private async createContext(
    lora: { filePath: string; scale: number } | undefined,
    name: string,
  ): Promise<LlamaAdapterBackend> {
    const context = await this.context(lora?.filePath ?? null, lora?.scale);
    return new LlamaAdapterBackend(name, this.model, context, this.contextSize, this.tokenizer, this.decode);
  }

  /**
   * A llama.cpp context of one sequence of `contextSize` tokens, with the LoRA GGUF `loraFile`
   * applied (or none). One sequence: node-llama-cpp 3.21.1 mixes up the logits of sequences
   * evaluated side by side (LlamaScorer). The caller disposes it.
   */
  async context(loraFile: string | null, scale = 1): Promise<LlamaContext> {
    try {
      return await this.model.createContext({
        contextSize: this.contextSize,
        threads: this.threads,
        sequences: 1,
        ...(this.kvCache === "f32"
          ? { flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" }
          : {}),
        ...(loraFile !== null ? { lora: { adapters: [{ filePath: loraFile, scale }] } } : {}),
      });
    } catch (error) {
      throw new LoramixError(
        "BACKEND",
        `${loraFile ?? this.modelFile}: llama.cpp cannot create a context: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * The GGUF llama.cpp applies for `adapter`: a LoRA GGUF as it is, a PEFT directory converted
   * once and kept until `forgetAdapterFile` or `dispose` (a candidate scored in several rounds is
   * converted once).
   */
  async adapterFile(adapter: string): Promise<string> {
    const source = resolve(adapter);
    const known = this.converted.get(source);
    if (known !== undefined) return known;
    const info = await stat(source).catch(() => undefined);
    if (info === undefined) throw inputError(source, "no such adapter file or directory");
    if (!info.isDirectory()) {
      await checkGgufForLlama(source, "adapter");
      return source;
    }
    const file = tempGgufPath(source);
    this.tempFiles.push(file);
    const started = performance.now();
    await peftToGguf({ adapterDir: source, base: this.modelFile, out: file });
    this.convertSeconds += (performance.now() - started) / 1000;
    this.converted.set(source, file);
    return file;
  }

  /** Removes the GGUF `adapterFile` converted for `adapter` (its folder is gone, say). */
  async forgetAdapterFile(adapter: string): Promise<void> {
    const source = resolve(adapter);
    const file = this.converted.get(source);
    if (file === undefined) return;
    this.converted.delete(source);
    this.tempFiles.splice(this.tempFiles.indexOf(file), 1);
    await removeScratch(file);
  }

  /** The base model's own context (no LoRA), created on first use. */
  async baseContext(): Promise<LlamaAdapterBackend> {
    this.base ??= await this.createContext(undefined, this.name);
    return this.base;
  }

  generate(prompt: string, options?: CompletionOptions): Promise<Generation> {
    return this.baseContext().then((b) => b.generate(prompt, options));
  }

  /** Natural log-probabilities of the next token after `ids` (base model). */
  nextTokenLogProbs(ids: number[]): Promise<Float64Array> {
    return this.baseContext().then((b) => b.nextTokenLogProbs(ids));
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.adapters.values()) await b.dispose();
    await this.base?.dispose();
    await this.model.dispose();
    await this.llama.dispose();
    for (const f of this.tempFiles) await removeScratch(f);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** The smallest positive float32 (subnormal): what a probability that underflowed was at most. */
const MIN_FLOAT32 = 1.401298464324817e-45;

/** One llama.cpp context: the base model with zero or one LoRA. */
export class LlamaAdapterBackend implements InferenceBackend {
  private readonly sequence: LlamaContextSequence;
  /** Runs one request at a time: the context has one sequence. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    /** As asked for: llama.cpp may round its context up (to 256 tokens at least), loramix keeps to this. */
    readonly contextSize: number,
    readonly tokenizer: Tokenizer,
    private readonly decode: Decode,
  ) {
    this.sequence = context.getSequence();
  }

  get endText(): string | null {
    return this.tokenizer.eosText;
  }

  generate(prompt: string, { maxNewTokens = 256, signal }: CompletionOptions = {}): Promise<Generation> {
    return this.serial(async () => {
      const input = this.tokenizer.encode(prompt, { bos: true });
      this.checkFits(input.length + maxNewTokens);
      await this.sequence.clearHistory();
      const ids: number[] = [];
      let stoppedBy: Generation["stoppedBy"] = "length";
      if (maxNewTokens > 0) {
        for await (const token of this.sequence.evaluate(input as Token[], {
          temperature: 0,
          yieldEogToken: true,
        })) {
          if (this.model.isEogToken(token)) {
            stoppedBy = "eos";
            break;
          }
          ids.push(token);
          if (ids.length >= maxNewTokens) break;
          throwIfAborted(signal);
        }
      }
      return {
        text: this.decode(ids),
        tokens: ids.length,
        ids,
        stoppedBy,
      };
    });
  }

  /**
   * Natural log-probabilities of the next token after `ids` (softmax of llama.cpp's raw logits;
   * greedy sampling leaves them untouched). Tokens whose float32 probability underflows get -Infinity.
   */
  nextTokenLogProbs(ids: number[]): Promise<Float64Array> {
    return this.serial(async () => {
      if (ids.length === 0) throw usageError("nextTokenLogProbs needs at least one token");
      this.checkFits(ids.length + 1);
      await this.sequence.clearHistory();
      const items = ids.map((t, i) =>
        i === ids.length - 1
          ? ([t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const)
          : t,
      );
      const results = await this.sequence.controlledEvaluate(
        items as Parameters<LlamaContextSequence["controlledEvaluate"]>[0],
      );
      const probabilities = results.at(-1)?.next.probabilities;
      if (probabilities === undefined)
        throw new LoramixError("BACKEND", "llama.cpp returned no probabilities");
      const out = new Float64Array(probabilities.size).fill(Number.NEGATIVE_INFINITY);
      for (const [token, p] of probabilities) out[token] = Math.log(p);
      return out;
    });
  }

  /**
   * ln p(ids[t] | ids[..t]) for every t from `from` on, in one pass over the sequence (softmax of
   * llama.cpp's raw logits). A token whose float32 probability underflows gets ln of the smallest
   * float32, so a loss stays finite and ranks such a candidate last.
   */
  tokenLogProbs(ids: readonly number[], from: number): Promise<Float64Array> {
    return this.serial(async () => {
      if (!(Number.isInteger(from) && from >= 1 && from < ids.length))
        throw usageError(`tokenLogProbs needs 1 ≤ from < ${ids.length}, got ${from}`);
      this.checkFits(ids.length);
      await this.sequence.clearHistory();
      const items = ids
        .slice(0, -1)
        .map((t, i) =>
          i >= from - 1
            ? ([t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const)
            : t,
        );
      const results = await this.sequence.controlledEvaluate(
        items as Parameters<LlamaContextSequence["controlledEvaluate"]>[0],
      );
      const out = new Float64Array(ids.length - from);
      for (let t = from; t < ids.length; t++) {
        const probabilities = results[t - 1]?.next.probabilities;
        if (probabilities === undefined)
          throw new LoramixError("BACKEND", "llama.cpp returned no probabilities");
        out[t - from] = Math.log(Math.max(probabilities.get(ids[t] as Token) ?? 0, MIN_FLOAT32));
      }
      return out;
    });
  }

  private checkFits(n: number): void {
    if (n > this.contextSize) {
      throw usageError(
        `prompt plus generation needs ${n} tokens, more than the context size ${this.contextSize}`,
      );
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  async dispose(): Promise<void> {
    if (!this.context.disposed) await this.context.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * A unique scratch file that still ends in .gguf (converters pick the base's reader by that suffix);
 * for a model, a full copy of it, which a killed run's successor removes (src/util/sweep.ts).
 */
function tempGgufPath(source: string): string {
  return scratchFile("gguf", `-${basename(source)}.gguf`);
}

/** The Hugging Face tokenizer's own decoder, for the ids llama.cpp generates. */
async function loadDecoder(spec: string): Promise<Decode> {
  const file = existsSync(join(spec, TOKENIZER_JSON)) ? join(spec, TOKENIZER_JSON) : spec;
  let decoder: HfTokenizerImpl;
  try {
    decoder = new HfTokenizerImpl(JSON.parse(await readFile(file, "utf8")), {});
  } catch (error) {
    throw formatError(file, `cannot build a decoder: ${(error as Error).message}`, error);
  }
  // No clean-up of spaces before punctuation: llama.cpp's own detokenizer (llama-server's text)
  // does none, nor do these models' tokenizer_config.json; the library's default does.
  return (ids) => decoder.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
}
