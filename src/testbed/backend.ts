import { join } from "node:path";
import { hfToGguf } from "../convert/hfToGguf.js";
import { LlamaBackend } from "../eval/llamaBackend.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import type { TestbedPaths } from "./paths.js";

/**
 * llama.cpp on the testbed's model. The model is converted here to a file named `*.gguf`, because
 * PEFT adapters are converted against the base's GGUF header and the converter recognises a GGUF
 * base by that suffix (LlamaBackend's own temporary file lacks it).
 */
export async function openTestbedBackend(
  paths: TestbedPaths,
  { context, threads }: { context: number; threads: number },
): Promise<{ backend: LlamaBackend; close: () => Promise<void> }> {
  const dir = await scratchDir("testbed");
  try {
    const file = join(dir, "tinystories-656k.gguf");
    await hfToGguf({ modelDir: paths.model, out: file });
    const backend = await LlamaBackend.load({
      model: file,
      tokenizer: paths.model,
      contextSize: context,
      threads,
    });
    return {
      backend,
      close: async () => {
        await backend.dispose();
        await removeScratch(dir);
      },
    };
  } catch (error) {
    await removeScratch(dir);
    throw error;
  }
}
