import {
  isFloatDtype,
  type SafetensorsDtype,
  SafetensorsWriter,
  type TensorSpec,
} from "../formats/safetensors.js";

/** Where mixed tensors go, one at a time, in the order they were declared. */
export interface TensorSink {
  append(data: Float32Array, name: string): Promise<void>;
}

/**
 * A streaming safetensors writer for a mixed adapter's tensors, in the inputs' float dtype (an
 * integer-typed input, which loadAdapter refuses anyway, would give float32).
 */
export function openMixedTensors(
  path: string,
  specs: readonly { name: string; shape: number[] }[],
  dtype: SafetensorsDtype,
): Promise<SafetensorsWriter> {
  const outDtype = isFloatDtype(dtype) ? dtype : "F32";
  const declared: TensorSpec[] = specs.map((s) => ({ name: s.name, shape: s.shape, dtype: outDtype }));
  return SafetensorsWriter.create(path, declared, { format: "pt" });
}
