/** `loramix/merge`: mixing adapters (SPEC §5: linear, delta-svd, cat) and comparing them in ΔW space. */
export {
  type AdapterComparison,
  type ComparisonSums,
  compareAdapters,
  compareModule,
  deltaInner,
  type ModuleFactors,
} from "./compare.js";
export { type LowRankTerm, truncateLowRankSum } from "./deltaSvd.js";
export {
  MIX_MODES,
  type MixMode,
  type MixOptions,
  type MixResult,
  mixAdapters,
} from "./mixAdapters.js";
export { isSyntheticAdapter, SYNTHETIC_MARKER } from "./sources.js";
