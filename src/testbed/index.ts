/** `loramix/testbed`: the shipped testbed: task selection, training and reference scores. */
export { analyzeSniDir, analyzeTask, type TaskAnswers } from "./analyze.js";
export {
  type BuildOptions,
  type BuildResult,
  buildTestbed,
  type TaskReference,
  type TaskTrainer,
  type TrainTaskOptions,
} from "./build.js";
export { majorityAnswer, majorityScore } from "./majority.js";
export { DEFAULT_TESTBED } from "./paths.js";
export { type Family, SELECTION_RULE, type Selection, selectTasks } from "./tasks.js";
