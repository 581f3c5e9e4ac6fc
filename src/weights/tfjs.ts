import { createRequire } from "node:module";
import { dirname } from "node:path";

import type * as TfModule from "@tensorflow/tfjs";

type Tf = typeof TfModule;
let loading: Promise<Tf> | undefined;

/**
 * tfjs on its WebAssembly backend (XNNPACK, SIMD), loaded on first use so that commands that do
 * not train pay nothing for it. In Node the .wasm files are read from the package's dist folder.
 */
export function loadTfjs(): Promise<Tf> {
  loading ??= (async () => {
    const tf = (await import("@tensorflow/tfjs")) as Tf;
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(
      `${dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"))}/`,
    );
    // The WebAssembly module binds console.warn as its error printer when it starts; its "Aborted()"
    // when the heap runs out would land on stderr before loramix's own one-line error: dropped.
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === "string" && args[0].startsWith("Aborted(")) return;
      warn(...args);
    };
    let ready: boolean;
    try {
      ready = await tf.setBackend("wasm");
    } finally {
      console.warn = warn;
    }
    if (!ready) throw new Error("tfjs: the wasm backend failed to initialise");
    await tf.ready();
    return tf;
  })();
  return loading;
}
