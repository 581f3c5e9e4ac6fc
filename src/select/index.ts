/** `loramix/select`: candidates scored on the user's train records (--select loss / fit). */
export {
  type Candidate,
  DEFAULT_NEAREST,
  lossCandidates,
  MIXTURE_TEMPERATURES,
} from "./candidates.js";
export { DEFAULT_FIT_TOP, DEFAULT_FIT_TRIALS, type FitResult, fitWeights } from "./fitWeights.js";
export { LlamaScorer } from "./llamaScorer.js";
export type { CandidateScorer, ScoreExample } from "./scorer.js";
export {
  DEFAULT_SCORE_EXAMPLES,
  type ScoredCandidate,
  type Selection as LossSelection,
  type SelectOptions,
  scoreExamples,
  selectByLoss,
} from "./selectByLoss.js";
