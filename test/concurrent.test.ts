import { describe, expect, it } from "vitest";
import { forEachConcurrent } from "../src/util/concurrent.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("forEachConcurrent", () => {
  it("starts items in order with at most `jobs` in flight and visits each once", async () => {
    const started: number[] = [];
    let inFlight = 0;
    let peak = 0;
    await forEachConcurrent([5, 1, 4, 2, 3, 1, 2], 3, async (ms, i) => {
      started.push(i);
      peak = Math.max(peak, ++inFlight);
      await tick(ms * 3);
      inFlight--;
    });
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(peak).toBe(3);
  });

  it("starts nothing after a failure, waits for the running calls, throws the first error", async () => {
    const finished: number[] = [];
    const run = forEachConcurrent([0, 1, 2, 3, 4, 5], 2, async (_, i) => {
      if (i === 1) throw new Error("first");
      if (i === 2) {
        await tick(5);
        throw new Error("second");
      }
      await tick(20);
      finished.push(i);
    });
    await expect(run).rejects.toThrow("first");
    // 1 fails at once while 0 runs: 0 completes, nothing after 1 starts (2's "second" never happens).
    expect(finished).toEqual([0]);
  });
});
