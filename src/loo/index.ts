/** `loramix/loo`: leave-one-out over a bank (SPEC §6): predicted adapters against the real ones. */
export { type DeltaJob, type DeltaJobScores, deltaScores } from "./deltaScores.js";
export {
  type LooConfiguration,
  type LooOptions,
  type LooResult,
  type LooRow,
  runLoo,
} from "./runLoo.js";
export { gramScores, LOO_NUMBERS, type LooNumber, type LooScores } from "./scores.js";
