import { readGgufHeader } from "../formats/ggufRead.js";
import type { OutFileKind } from "../util/atomic.js";

/**
 * Metadata key of every GGUF loramix converts ("model" or "adapter"), so that a rerun knows it may
 * replace the file, as `.loramix-output` does for folders; llama.cpp ignores keys it does not know.
 */
export const GGUF_OUTPUT_KEY = "loramix.output";

/** `--out` of a converter: a new path, or a GGUF of the same kind that loramix converted. */
export function ggufOutput(kind: "model" | "adapter"): OutFileKind {
  return {
    what: `a GGUF ${kind}`,
    written: async (path) => (await readGgufHeader(path)).metadata[GGUF_OUTPUT_KEY]?.value === kind,
  };
}
