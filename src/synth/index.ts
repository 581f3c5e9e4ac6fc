/** `loramix/synth`: synthetic adapter banks for tests and the model-free demo. */
export {
  SYNTH_LAYOUTS,
  type SynthBankResult,
  type SynthEntry,
  type SynthLayoutName,
  synthBank,
} from "./synthBank.js";
