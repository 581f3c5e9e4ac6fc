import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/program.js";
import { checkArgs, resolveCommand } from "../src/cli/strictArgs.js";
import { DEFAULT_FINETUNE_STEPS } from "../src/train/finetuneLora.js";
import { README, shellCommands } from "./helpers/readme.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/** The command table's synopses (`loramix bank ls DIR [--json]`): command words and the flags named. */
function tableSynopses(): { line: string; command: string[]; flags: string[] }[] {
  return [...README.matchAll(/^\| `(loramix [^`]+)`/gm)].flatMap((m) =>
    (m[1] as string).split(" / ").map((line) => {
      const w = line.replace(/\\\|/g, "|").split(/\s+/).slice(1);
      const end = w.findIndex((x) => !/^[a-z][a-z0-9-]*$/.test(x));
      const command = end < 0 ? w : w.slice(0, end);
      // Flags named anywhere in the row's synopsis or its description count: both are promises.
      const flags = [...line.matchAll(/--[a-z][a-z0-9-]*/g)].map((f) => f[0]);
      return { line, command: command.filter((x) => x !== "loramix"), flags };
    }),
  );
}

describe("the README's commands", () => {
  it("name only commands and options that exist, with every required option given", async () => {
    const commands = shellCommands();
    // The step-by-step walkthrough, the server section, the install line.
    expect(commands.length).toBeGreaterThanOrEqual(10);
    for (const args of commands) {
      await checkArgs(main, args);
      const { path, args: defs } = await resolveCommand(main, args);
      for (const [name, def] of Object.entries(defs)) {
        if (def.type === "positional" || !(def as { required?: boolean }).required) continue;
        expect(
          args.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)),
          `${path} needs --${name}`,
        ).toBe(true);
      }
    }
    const synopses = tableSynopses();
    expect(synopses.length).toBeGreaterThanOrEqual(18);
    for (const s of synopses) {
      const { args: defs, path } = await resolveCommand(main, s.command);
      expect(path, s.line).toBe(`loramix ${s.command.join(" ")}`);
      await checkArgs(main, [...s.command, ...s.flags]);
      expect(Object.keys(defs).length, s.line).toBeGreaterThan(0);
    }
  });

  it("the step-by-step walkthrough runs as written, with the tiny model for the base and the testbed for the bank", async () => {
    const { dir, cleanup } = await tempDir("loramix-readme-");
    const TSX = pathToFileURL(createRequire(join(REPO, "package.json")).resolve("tsx")).href;
    const run = promisify(execFile);
    const loramix = (args: string[]) =>
      run(process.execPath, ["--import", TSX, join(REPO, "src/cli/main.ts"), ...args], { cwd: dir });
    try {
      // What the walkthrough assumes the user has: a JSONL task, a base model as GGUF, its tokenizer.
      const task = JSON.parse(readFileSync(join(SNI_DIR, "task1146_country_capital.json"), "utf8")) as {
        Instances: { input: string; output: string[] }[];
      };
      writeFileSync(
        join(dir, "my-task.jsonl"),
        task.Instances.slice(0, 40)
          .map((r) => JSON.stringify({ input: r.input, output: r.output[0] }))
          .join("\n"),
      );
      const substitute = (args: string[]) =>
        args.map((a) =>
          a === "base-model.gguf"
            ? join(dir, "base-model.gguf")
            : a === "tokenizer.json"
              ? join(TINY_MODEL, "tokenizer.json")
              : a,
        );
      await loramix(["convert", "hf-to-gguf", TINY_MODEL, "--out", "base-model.gguf"]);
      const steps = shellCommands();
      const find = (prefix: string[], has?: string) =>
        steps.find(
          (s) => prefix.every((p, i) => s[i] === p) && (has === undefined || s.includes(has)),
        ) as string[];

      // Step 1 as written (an empty Mistral bank; import-lol needs Lots-of-LoRAs snapshots, not here).
      const init = find(["bank", "init"]);
      expect(init).toContain("--base-model");
      await loramix(init);
      await loramix(find(["bank", "index"]));
      const ls = await loramix(["bank", "ls", "my-bank", "--json"]);
      expect(JSON.parse(ls.stdout)).toEqual([]);

      // Step 2 both ways, on the testbed bank (tiny-model adapters) instead of the empty one.
      const onTestbed = (args: string[]) =>
        substitute(args.map((a) => (a === "my-bank" ? join(REPO, "testbed") : a)));
      const byLoss = find(["generate"], "--model");
      await loramix([...onTestbed(byLoss), "--quiet"]);
      const chosen = JSON.parse(readFileSync(join(dir, "my-adapter", "loramix.json"), "utf8"));
      // The default refines the best candidates' mix; the refinement is recorded, kept or not.
      expect(chosen.method).toBe("select-fit");
      expect(chosen.options.selection.candidates.length).toBeGreaterThan(1);
      expect(chosen.options.selection.fit.trials).toBeGreaterThan(0);
      // The same with the base model's Hugging Face folder: the mix is fine-tuned on the train records.
      const tuned = find(["generate"], "base-model-dir");
      await loramix([...onTestbed(tuned).map((a) => (a === "base-model-dir" ? TINY_MODEL : a)), "--quiet"]);
      const tunedRecord = JSON.parse(readFileSync(join(dir, "tuned-adapter", "loramix.json"), "utf8"));
      expect(tunedRecord.finetune.steps).toBe(DEFAULT_FINETUNE_STEPS);
      expect(tunedRecord.finetune.finalLoss).toBeLessThan(tunedRecord.finetune.firstLoss);
      const paper = find(["generate"], "--method");
      await loramix([...onTestbed(paper), "--quiet"]);
      expect(existsSync(join(dir, "paper-adapter", "adapter_model.safetensors"))).toBe(true);

      // Step 3 as written.
      const evaluated = await loramix([...substitute(find(["eval"], "--adapter")), "--json"]);
      const metrics = JSON.parse(evaluated.stdout) as { n: number; adapter: string };
      expect(metrics.n).toBeGreaterThan(0);
      expect(metrics.adapter).toBe(join(dir, "my-adapter"));
      expect(existsSync(join(dir, "eval-out", "predictions.jsonl"))).toBe(true);
    } finally {
      await cleanup();
    }
  }, 240_000);
});
