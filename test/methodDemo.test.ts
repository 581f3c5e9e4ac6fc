import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runMethodDemo } from "../src/demo/methodDemo.js";
import { loadAdapter } from "../src/formats/peft.js";
import { SNI_DIR, tempDir } from "./helpers/shared.js";

const tmp = await tempDir();
afterAll(() => tmp.cleanup());

describe("the demo without a trained testbed (method on synthetic adapters)", () => {
  it("writes an adapter per new dataset, marked synthetic, with weights that sum to 1, and a LOO report", async () => {
    const out = join(tmp.dir, "demo");
    const result = await runMethodDemo({ sni: SNI_DIR, out, tasks: 24 });
    expect(result.bankEntries).toBe(22);
    expect(result.targets.map((t) => t.task)).toHaveLength(2);
    for (const t of result.targets) {
      const dir = join(out, "adapters", t.task);
      const adapter = await loadAdapter(dir);
      expect(adapter.modules.length).toBeGreaterThan(0);
      const provenance = JSON.parse(readFileSync(join(dir, "loramix.json"), "utf8"));
      expect(provenance.synthetic).toBe(true);
      const weights = provenance.weights as { id: string; weight: number }[];
      expect(weights).toHaveLength(22);
      expect(weights.some((w) => w.id === t.task)).toBe(false);
      expect(weights.reduce((s, w) => s + w.weight, 0)).toBeCloseTo(1, 9);
      // Top-8 selection: exactly eight non-zero weights, the largest first.
      expect(weights.filter((w) => w.weight > 0)).toHaveLength(8);
      expect(t.top[0]!.weight).toBeGreaterThanOrEqual(t.top[1]!.weight);
    }
    expect(result.loo.targets).toHaveLength(22);
    expect(readFileSync(join(out, "loo", "summary.html"), "utf8")).toContain("<table");
    expect(result.loo.summary).toContain("| normalized |");
  });
});
