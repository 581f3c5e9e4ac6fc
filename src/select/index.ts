/** `loramix/select`: candidates scored on the user's train records (--select loss / fit). */
export {
  type Candidate,
  DEFAULT_NEAREST,
  lossCandidates,
  MIXTURE_TEMPERATURES,
} from "./candidates.js";
export { DEFAULT_SCORE_EXAMPLES, scoreExamples } from "./examples.js";
export {
  DEFAULT_FIT_TOP,
  DEFAULT_FIT_TRIALS,
  type FitOptions,
  type FitResult,
  fitWeights,
} from "./fitWeights.js";
export { LlamaScorer } from "./llamaScorer.js";
export { OpenAIScorer } from "./openaiScorer.js";
export { type OpenScorerOptions, openScorer, type ScoreServer } from "./openScorer.js";
export type { CandidateScorer, ScoreExample } from "./scorer.js";
export { type WeightScore, WeightScorer } from "./scoreWeights.js";
export {
  type LossSelection,
  type ScoredCandidate,
  type SelectOptions,
  selectByLoss,
} from "./selectByLoss.js";
