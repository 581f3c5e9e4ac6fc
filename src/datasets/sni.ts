import { formatError } from "../errors.js";
import type { DatasetRecord } from "./record.js";

/** Python's string.punctuation, which Tk-Instruct's collator checks before adding a final ".". */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

function endWithPunctuation(s: string): string {
  return s.length > 0 && PUNCTUATION.has(s[s.length - 1]!) ? s : `${s}.`;
}

/**
 * Python's str.strip(): its whitespace includes U+001C–U+001F and U+0085, which JS's trim() keeps,
 * and excludes U+FEFF, which trim() removes. Prompts must match the Python collator byte for byte.
 */
const PY_WHITESPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, "g");

export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
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
  let s = ` ${kind} Example ${k} -\nInput: ${pyStrip(ex.input)}`;
  s = endWithPunctuation(s);
  s += `\n Output: ${pyStrip(ex.output)}`;
  s = endWithPunctuation(s);
  return `${s}\n\n`;
}

/**
 * The Lots-of-LoRAs / Tk-Instruct prompt (SPEC §1): definition + 2 positive + 2 negative examples +
 * the instance. As in Tk-Instruct's collator, the "." check looks at the text built so far, so an
 * empty inserted text still gets its ".".
 */
export function sniPrompt(
  task: Pick<SniTask, "definition" | "positive" | "negative">,
  instanceInput: string,
): string {
  let prompt = `${endWithPunctuation(`Definition: ${pyStrip(task.definition)}`)}\n\n`;
  task.positive.slice(0, 2).forEach((ex, i) => {
    prompt += exampleBlock("Positive", i + 1, ex);
  });
  task.negative.slice(0, 2).forEach((ex, i) => {
    prompt += exampleBlock("Negative", i + 1, ex);
  });
  prompt += `${endWithPunctuation(`Now complete the following example -\nInput: ${pyStrip(instanceInput)}`)}\n`;
  return `${prompt}Output: `;
}

function examples(file: string, field: string, value: unknown): SniExample[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw formatError(file, `"${field}" is not a list`);
  return value.map((ex, i) => {
    const e = (typeof ex === "object" && ex !== null ? ex : {}) as Record<string, unknown>;
    if (typeof e.input !== "string" || typeof e.output !== "string") {
      throw formatError(file, `"${field}"[${i}] needs string "input" and "output"`);
    }
    return { input: e.input, output: e.output };
  });
}

/** Task-level lists copied into `Dataset.metadata` (SNI key -> metadata key). */
const METADATA_FIELDS = [
  ["Categories", "categories"],
  ["Domains", "domains"],
  ["Reasoning", "reasoning"],
  ["Source", "source"],
  ["Input_language", "inputLanguage"],
  ["Output_language", "outputLanguage"],
  ["Instruction_language", "instructionLanguage"],
] as const;

function definitionOf(file: string, defs: unknown): string {
  if (typeof defs === "string") return defs;
  if (Array.isArray(defs)) {
    // Tk-Instruct indexes [0] and would crash on an empty list; an empty definition is the closest
    // reading that still lets the task's instances be used.
    if (defs.length === 0) return "";
    if (typeof defs[0] === "string") return defs[0];
  }
  if (defs === undefined) throw formatError(file, `missing "Definition"`);
  throw formatError(file, `"Definition" must be a string or a list of strings`);
}

function instanceOf(file: string, inst: unknown, i: number): SniTask["instances"][number] {
  if (typeof inst !== "object" || inst === null || Array.isArray(inst)) {
    throw formatError(file, `"Instances"[${i}] is not an object`);
  }
  const x = inst as Record<string, unknown>;
  if (typeof x.input !== "string")
    throw formatError(file, `"Instances"[${i}].input is missing or not a string`);
  const output = typeof x.output === "string" ? [x.output] : x.output;
  if (!Array.isArray(output) || !output.every((o) => typeof o === "string")) {
    throw formatError(file, `"Instances"[${i}].output is missing or not a list of strings`);
  }
  if (output.length === 0) throw formatError(file, `"Instances"[${i}].output is an empty list`);
  if (x.id !== undefined && typeof x.id !== "string")
    throw formatError(file, `"Instances"[${i}].id is not a string`);
  return { ...(x.id !== undefined ? { id: x.id } : {}), input: x.input, output };
}

export function parseSniTask(file: string, json: unknown): SniTask {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw formatError(file, "not a Super-NaturalInstructions task (expected a JSON object)");
  }
  const t = json as Record<string, unknown>;
  if (!("Instances" in t))
    throw formatError(file, `missing "Instances" (not a Super-NaturalInstructions task)`);
  if (!Array.isArray(t.Instances)) throw formatError(file, `"Instances" is not a list`);
  const definition = definitionOf(file, t.Definition);
  const instances = t.Instances.map((inst, i) => instanceOf(file, inst, i));
  const metadata: Record<string, unknown> = {};
  for (const [key, name] of METADATA_FIELDS) {
    const value = t[key];
    if (Array.isArray(value)) metadata[name] = value.filter((v) => typeof v === "string");
    else if (typeof value === "string") metadata[name] = [value];
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
