/** `loramix/demo`: the paper's experiment on the shipped testbed, and its tables. */
export { type DemoOptions, type DemoResult, runDemo, type TargetRow } from "./run.js";
export { gapClosed, type ScoreGrid, variantSummary } from "./tables.js";
