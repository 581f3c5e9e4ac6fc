/** The names of the files loramix reads and writes, in one place. */

/** A PEFT adapter directory's config and weights. */
export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
/** Beside a generated adapter: how loramix made it (inputs, weights, selection). */
export const ADAPTER_RECORD = "loramix.json";
/** Beside an adapter `loramix train` wrote: its training record. */
export const TRAIN_RECORD = "loramix-train.json";
/** A Hugging Face model directory's config and tokenizer. */
export const HF_CONFIG = "config.json";
export const TOKENIZER_JSON = "tokenizer.json";
/** What `loramix eval --out` holds: one JSON line per record, and the summary. */
export const PREDICTIONS_FILE = "predictions.jsonl";
export const METRICS_FILE = "metrics.json";
