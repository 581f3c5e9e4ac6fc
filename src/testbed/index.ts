/** `loramix/testbed`: the shipped testbed: task selection, training and reference scores. */
export { analyzeSniDir, analyzeTask, type TaskAnswers } from "./analyze.js";
export {
  type BuildOptions,
  type BuildResult,
  buildTestbed,
  DEFAULT_SEED,
  type TaskReference,
  type TaskTrainer,
  type TrainTaskOptions,
} from "./build.js";
export { majorityAnswer, majorityScore } from "./majority.js";
export { DEFAULT_TESTBED } from "./paths.js";
export { DEFAULT_EVAL, type EvalSettings, evalRecords, scoreBackend, testbedRule } from "./references.js";
export { type Family, SELECTION_RULE, selectTasks, type TaskSelection } from "./tasks.js";
