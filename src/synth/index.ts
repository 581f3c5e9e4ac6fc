/** `loramix/synth`: synthetic adapter banks and models for tests, benchmarks and the model-free demo. */
export {
  SYNTH_LAYOUTS,
  type SynthBankResult,
  type SynthEntry,
  type SynthLayoutName,
  synthBank,
} from "./synthBank.js";
export {
  SYNTH_MODEL_SHAPES,
  SYNTHETIC_MODEL_KEY,
  type SynthModelResult,
  type SynthModelShape,
  type SynthModelShapeName,
  synthModel,
} from "./synthModel.js";
