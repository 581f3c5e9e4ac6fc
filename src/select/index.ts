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
export { LlamaScorer, scoringTokens, sharedPrefix } from "./llamaScorer.js";
export { OpenAIScorer } from "./openaiScorer.js";
export { type OpenScorerOptions, openScorer, type ScoreServer } from "./openScorer.js";
export {
  checkBudget,
  DEFAULT_BUDGET,
  defaultBudget,
  describeSchedule,
  MIN_FIT_TRIALS,
  planSchedule,
  type Schedule,
  type ScheduleOptions,
  SELECTION_SHARE,
  type Stage,
} from "./schedule.js";
export type { CandidateScorer, ScoreExample } from "./scorer.js";
export { meanLoss, type WeightScore, WeightScorer } from "./scoreWeights.js";
export {
  type LossSelection,
  type ScoredCandidate,
  type SelectionEstimate,
  type SelectOptions,
  selectByLoss,
} from "./selectByLoss.js";
