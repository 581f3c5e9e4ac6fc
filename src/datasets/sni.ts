import { formatError } from "../errors.js";
import type { DatasetRecord } from "./record.js";

/** Python's string.punctuation, which Tk-Instruct's collator checks before adding a final ".". */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

function endWithPunctuation(s: string): string {
  return s.length > 0 && PUNCTUATION.has(s[s.length - 1]!) ? s : `${s}.`;
}

interface SniExample {
  input: string;
  output: string;
}

export interface SniTask {
  definition: string;
  positive: SniExample[];
  negative: SniExample[];
  instances: { id?: string; input: string; output: string[] }[];
  metadata: Record<string, unknown>;
}

function exampleBlock(kind: "Positive" | "Negative", k: number, ex: SniExample): string {
  let s = ` ${kind} Example ${k} -\nInput: ${ex.input.trim()}`;
  s = endWithPunctuation(s);
  s += `\n Output: ${ex.output.trim()}`;
  s = endWithPunctuation(s);
  return `${s}\n\n`;
}

/**
 * The Lots-of-LoRAs / Tk-Instruct prompt (SPEC §1): definition + 2 positive + 2 negative examples +
 * the instance. As in Tk-Instruct's collator, the "." check looks at the text built so far, so an
 * empty inserted text still gets its ".".
 */
export function sniPrompt(task: Pick<SniTask, "definition" | "positive" | "negative">, instanceInput: string): string {
  let prompt = `${endWithPunctuation(`Definition: ${task.definition.trim()}`)}\n\n`;
  task.positive.slice(0, 2).forEach((ex, i) => {
    prompt += exampleBlock("Positive", i + 1, ex);
  });
  task.negative.slice(0, 2).forEach((ex, i) => {
    prompt += exampleBlock("Negative", i + 1, ex);
  });
  prompt += `${endWithPunctuation(`Now complete the following example -\nInput: ${instanceInput.trim()}`)}\n`;
  return `${prompt}Output: `;
}

function examples(file: string, field: string, value: unknown): SniExample[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw formatError(file, `"${field}" is not a list`);
  return value.map((ex, i) => {
    const e = ex as Record<string, unknown>;
    if (typeof e?.input !== "string" || typeof e?.output !== "string") {
      throw formatError(file, `"${field}"[${i}] needs string "input" and "output"`);
    }
    return { input: e.input, output: e.output };
  });
}

/** True when a parsed JSON value looks like a Super-NI task file. */
export function isSniTask(json: unknown): boolean {
  return typeof json === "object" && json !== null && !Array.isArray(json) && "Instances" in json;
}

export function parseSniTask(file: string, json: unknown): SniTask {
  if (!isSniTask(json)) throw formatError(file, `not a Super-NaturalInstructions task (no "Instances")`);
  const t = json as Record<string, unknown>;
  const defs = t.Definition;
  let definition: string;
  if (typeof defs === "string") definition = defs;
  else if (Array.isArray(defs) && typeof defs[0] === "string") definition = defs[0];
  else if (Array.isArray(defs) && defs.length === 0) definition = "";
  else throw formatError(file, `"Definition" must be a string or a list of strings`);
  if (!Array.isArray(t.Instances)) throw formatError(file, `"Instances" is not a list`);
  const instances = t.Instances.map((inst, i) => {
    const x = inst as Record<string, unknown>;
    if (typeof x?.input !== "string") throw formatError(file, `"Instances"[${i}].input is not a string`);
    const out = x.output;
    const output = typeof out === "string" ? [out] : out;
    if (!Array.isArray(output) || !output.every((o) => typeof o === "string")) {
      throw formatError(file, `"Instances"[${i}].output is not a list of strings`);
    }
    return { ...(typeof x.id === "string" ? { id: x.id } : {}), input: x.input, output: output as string[] };
  });
  const metadata: Record<string, unknown> = {};
  for (const [key, name] of [
    ["Categories", "categories"],
    ["Domains", "domains"],
    ["Reasoning", "reasoning"],
    ["Source", "source"],
    ["Input_language", "inputLanguage"],
    ["Output_language", "outputLanguage"],
  ] as const) {
    if (Array.isArray(t[key])) metadata[name] = (t[key] as unknown[]).filter((v) => typeof v === "string");
  }
  return {
    definition,
    positive: examples(file, "Positive Examples", t["Positive Examples"]),
    negative: examples(file, "Negative Examples", t["Negative Examples"]),
    instances,
    metadata,
  };
}

export function sniRecords(task: SniTask): DatasetRecord[] {
  return task.instances.map((inst) => ({
    ...(inst.id !== undefined ? { id: inst.id } : {}),
    input: sniPrompt(task, inst.input),
    output: inst.output,
  }));
}
