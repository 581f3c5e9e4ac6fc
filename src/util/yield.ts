import { setImmediate } from "node:timers/promises";
import { throwIfAborted } from "../errors.js";

/**
 * Lets pending events run, then stops if aborted. Long synchronous work (tfjs-wasm, whose data()
 * resolves as a microtask, or a tight loop) calls this between units so Ctrl-C's handler and a
 * worker's abort message get through.
 */
export async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  await setImmediate();
  throwIfAborted(signal);
}
