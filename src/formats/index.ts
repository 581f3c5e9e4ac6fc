/** `loramix/formats`: file formats read from strangers and written for other tools: safetensors, GGUF, PEFT adapters, Hugging Face checkpoints. */
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, numel } from "./dtypes.js";
export {
  ADAPTER_CONFIG,
  ADAPTER_RECORD,
  ADAPTER_WEIGHTS,
  HF_CONFIG,
  TOKENIZER_JSON,
  TRAIN_RECORD,
} from "./fileNames.js";
export {
  GGML_TYPES,
  type GgufBlockType,
  type GgufMetadata,
  type GgufTensorToWrite,
  type GgufValue,
  SYNTHETIC_MODEL_KEY,
  type WriteGgufOptions,
  writeGguf,
} from "./gguf.js";
export {
  type GgufFile,
  type GgufTensorInfo,
  parseGgufHeader,
  readGgufHeader,
  readGgufTensorF32,
} from "./ggufRead.js";
export { HfCheckpoint } from "./hfCheckpoint.js";
export {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaDims,
  type LlamaProjection,
  MISTRAL_7B_DIMS,
  projectionShape,
  readLlamaConfig,
  weightsPerToken,
} from "./llamaConfig.js";
export { type ModelInfo, readModelInfo } from "./modelInfo.js";
export {
  type Adapter,
  type AdapterConfig,
  type AdapterLayout,
  compareLayouts,
  type LoraModule,
  loadAdapter,
  loraScaling,
  parseAdapterConfig,
  saveAdapter,
} from "./peft.js";
export {
  DTYPE_SIZE,
  isFloatDtype,
  MAX_HEADER_LENGTH,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsHeader,
  SafetensorsReader,
  SafetensorsWriter,
  type TensorInfo,
  type TensorSpec,
  type TensorToWrite,
  type WritableDtype,
  type WriteOptions,
  writeSafetensors,
  writeSafetensorsStreaming,
} from "./safetensors.js";
