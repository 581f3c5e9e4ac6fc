import { usageError } from "../errors.js";
import { PROFILE_SIDES, type ProfileSide } from "../profiles/profile.js";

/** Option values arrive as strings; these turn them into checked values or a usage error naming the flag. */

export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !(Number.isInteger(n) && n >= 1)) {
    throw usageError(`--${name} must be a positive integer, got "${value}"`);
  }
  return n;
}

/** An integer ≥ `min`, or undefined when the flag is absent. */
export function integerAtLeast(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw usageError(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  }
  return n;
}

/** A number passing `check` (described by `what` in the error), or undefined when the flag is absent. */
export function optionalNumber(
  name: string,
  value: string | undefined,
  check: (n: number) => boolean,
  what: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !check(n)) throw usageError(`--${name} must be ${what}, got "${value}"`);
  return n;
}

export function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T))
    throw usageError(`--${name} must be one of ${allowed.join(", ")}, got "${value}"`);
  return value as T;
}

/** "all" or a comma-separated subset of `allowed`, without repeats. */
export function listOf<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  if (value === "all") return [...allowed];
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const bad = items.filter((s) => !allowed.includes(s as T));
  if (items.length === 0 || bad.length > 0) {
    throw usageError(
      `--${name} must be "all" or a comma-separated list of ${allowed.join(", ")}, got "${value}"`,
    );
  }
  return [...new Set(items)] as T[];
}

/** The `--side` option of every command that profiles or compares datasets. */
export const SIDE_ARG = {
  type: "string",
  default: "both",
  description:
    "What a profile counts: both (input + output, SPEC §2, the paper's), output (the answers: label set and format) or input",
} as const;

export function sideOption(value: string): ProfileSide {
  return oneOf("side", value, PROFILE_SIDES);
}

/** `--json` of the commands that print a result: the same result, as one JSON document on stdout. */
export const JSON_OPTION = {
  json: { type: "boolean", description: "Print the result as JSON on stdout (messages stay on stderr)" },
} as const;

/** The server options `eval --backend openai` and `generate --score-url` share. */
export const SERVER_OPTIONS = {
  "api-key-env": {
    type: "string",
    description: "Environment variable holding the server's API key (default: OPENAI_API_KEY when it is set)",
  },
  timeout: {
    type: "string",
    description:
      "Seconds a server request may take (default: 60 plus 0.25 per token asked for, e.g. 124 for 256 new tokens); a line on stderr says when one is slow",
  },
} as const;

/** The API key: from the variable `--api-key-env` names, which must then be set, or OPENAI_API_KEY when set. */
export function apiKeyFrom(variable: string | undefined): string | undefined {
  if (variable === undefined) return process.env.OPENAI_API_KEY || undefined;
  const key = process.env[variable];
  if (!key) throw usageError(`--api-key-env ${variable}: the environment variable ${variable} is not set`);
  return key;
}

/** `--timeout S` in milliseconds. */
export function timeoutMs(value: string | undefined): number | undefined {
  const s = optionalNumber(
    "timeout",
    value,
    (n) => Number.isFinite(n) && n > 0,
    "a positive number of seconds",
  );
  return s === undefined ? undefined : s * 1000;
}
