import { existsSync } from "node:fs";
import { basename } from "node:path";
import { option, usageError } from "../errors.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { InferenceBackend } from "./backend.js";
import { LlamaBackend } from "./llamaBackend.js";
import { OpenAIBackend } from "./openaiBackend.js";

export const BACKEND_KINDS = ["llama", "openai"] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export interface OpenBackendOptions {
  kind: BackendKind;
  /** llama: a GGUF file or a Hugging Face Llama directory. openai: the served name when `modelName` is absent. */
  model?: string;
  /** llama: a PEFT directory or a LoRA GGUF. openai: its basename is the served name when `modelName` is absent. */
  adapter?: string;
  /** llama: tokenizer.json (or its directory), needed with a GGUF model. */
  tokenizer?: string;
  threads?: number;
  /** llama: tokens per context (default: the model's trained context). openai: the server's (default: what it says). */
  contextSize?: number;
  /** llama: told when `contextSize` exceeds the model's trained context. openai: told while a request is slow. */
  warn?: (message: string) => void;
  baseUrl?: string;
  modelName?: string;
  apiKey?: string;
  concurrency?: number;
  /** openai: per request (default: from the tokens asked for, `defaultTimeoutMs`). */
  timeoutMs?: number;
  /** openai: llama-server's per-request adapters (`--lora-id N[:SCALE]`). */
  lora?: { id: number; scale: number }[];
  /** openai: send token ids (tokenized with `tokenizer`, or `model` when it is a local folder or file). */
  promptIds?: boolean;
  /** openai: fields merged into every request. */
  extraBody?: Record<string, unknown>;
  /** openai: aborts the questions asked of the server while opening. */
  signal?: AbortSignal;
}

/**
 * A backend by name, ready to generate with the adapter applied. Disposing it frees everything
 * it loaded (llama.cpp model, contexts, temporary GGUF files).
 */
export async function openBackend(options: OpenBackendOptions): Promise<InferenceBackend> {
  const { kind } = options;
  switch (kind) {
    case "llama":
      return openLlama(options);
    case "openai":
      return openOpenAI(options);
    default:
      throw usageError(`unknown backend "${kind satisfies never}" (expected ${BACKEND_KINDS.join(" or ")})`);
  }
}

async function openLlama({
  model,
  adapter,
  tokenizer,
  threads,
  contextSize,
  warn,
}: OpenBackendOptions): Promise<InferenceBackend> {
  if (model === undefined)
    throw usageError("the llama backend needs a model (a .gguf file or a Hugging Face directory)");
  const base = await LlamaBackend.load({ model, tokenizer, threads, contextSize, warn });
  if (adapter === undefined) return base;
  try {
    const withAdapter = await base.withAdapter(adapter);
    // Disposing the base frees the adapter's context too; callers hold only this object.
    return {
      name: withAdapter.name,
      endText: withAdapter.endText,
      tokenizer: withAdapter.tokenizer,
      contextSize: withAdapter.contextSize,
      generate: (prompt, generateOptions) => withAdapter.generate(prompt, generateOptions),
      dispose: () => base.dispose(),
      [Symbol.asyncDispose]: () => base.dispose(),
    };
  } catch (error) {
    await base.dispose();
    throw error;
  }
}

async function openOpenAI({
  model,
  adapter,
  modelName,
  baseUrl,
  apiKey,
  concurrency,
  timeoutMs,
  contextSize,
  warn,
  lora,
  promptIds,
  tokenizer,
  extraBody,
  signal,
}: OpenBackendOptions): Promise<InferenceBackend> {
  if (baseUrl === undefined)
    throw usageError("the openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)");
  // vLLM serves a LoRA under the name given to --lora-modules; the adapter's folder name is the usual choice.
  const served = modelName ?? (adapter !== undefined ? basename(adapter).replace(/\.gguf$/i, "") : model);
  if (served === undefined) {
    const name = option("modelName");
    throw usageError(`the openai backend needs a model name (${name.text})`, [name]);
  }
  // The tokenizer fits prompts and ends predictions as llama.cpp's does; `model` counts when it is a local folder or file.
  const spec = tokenizer ?? (model !== undefined && existsSync(model) ? model : undefined);
  if (spec === undefined && promptIds) {
    const name = option("tokenizer");
    throw usageError(
      `token-id prompts need the model's tokenizer: give ${name.text} (tokenizer.json or "mistral")`,
      [name],
    );
  }
  return OpenAIBackend.connect(
    {
      baseUrl,
      model: served,
      apiKey,
      concurrency,
      timeoutMs,
      contextSize,
      warn,
      lora,
      tokenizer: spec === undefined ? undefined : await loadTokenizer(spec),
      promptIds,
      extraBody,
    },
    { signal },
  );
}
