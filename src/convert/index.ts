/** `loramix/convert`: conversions to GGUF for llama.cpp: a Hugging Face Llama checkpoint, a PEFT LoRA adapter. */
export { type HfToGgufOptions, type HfToGgufResult, hfToGguf } from "./hfToGguf.js";
export { permuteForRope } from "./llamaNames.js";
export { type PeftToGgufOptions, type PeftToGgufResult, peftToGguf } from "./peftToGguf.js";
