import { inputError, LoramixError } from "../errors.js";
import { loadTokenizer } from "../tokenizers/load.js";
import { DEFAULT_EOS_ID, type SequenceRule } from "../train/examples.js";
import { LlamaScorer } from "./llamaScorer.js";
import { OpenAIScorer } from "./openaiScorer.js";
import type { CandidateScorer } from "./scorer.js";

/** An OpenAI-compatible server that scores candidates, and the base model's served name on it. */
export interface ScoreServer {
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Per request, in ms (default: from what it asks, `defaultTimeoutMs`). */
  timeoutMs?: number;
  /** Told while a request is slow. */
  warn?: (message: string) => void;
}

export interface OpenScorerOptions {
  /** A GGUF or Hugging Face Llama directory llama.cpp loads; ignored with `server`. */
  model?: string;
  /** The model's tokenizer.json, for a GGUF `model`. */
  tokenizer?: string;
  server?: ScoreServer;
  /** The bank's tokenizer spec: the server's examples are built with it, and a GGUF's by default. */
  bankTokenizer: string;
  /** The sequence rule: its context is what each scored sequence may hold. */
  rule: SequenceRule;
  /** llama.cpp threads (default: every core). */
  threads?: number;
}

/**
 * The scorer generate's selection runs on: llama.cpp on this machine, or a server. A base model
 * llama.cpp cannot load is refused here, before any candidate is mixed or scored.
 */
export async function openScorer({
  model,
  tokenizer,
  server,
  bankTokenizer,
  rule,
  threads,
}: OpenScorerOptions): Promise<CandidateScorer> {
  if (server) {
    const bank = await loadTokenizer(bankTokenizer);
    const eos = bank.eosText === null ? [] : bank.encode(bank.eosText);
    return new OpenAIScorer(server, {
      tokenizer: bank,
      eosId: eos.length === 1 ? (eos[0] as number) : DEFAULT_EOS_ID,
      contextSize: rule.context,
    });
  }
  if (model === undefined) throw new Error("openScorer needs a model or a server");
  try {
    return await LlamaScorer.open({
      model,
      // A GGUF's own vocabulary by default, the bank's where llama.cpp cannot run that on every text.
      ...(tokenizer === undefined ? { fallbackTokenizer: bankTokenizer } : { tokenizer }),
      // Scored sequences need no more: a model's full trained context (32768 for Mistral) costs gigabytes of cache.
      contextSize: rule.context,
      ...(threads === undefined ? {} : { threads }),
    });
  } catch (error) {
    if (error instanceof LoramixError) throw error;
    throw inputError(
      model,
      `llama.cpp cannot load this base model (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
}
