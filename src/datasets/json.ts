import { formatError, type LoramixError } from "../errors.js";

/** Bytes that are not UTF-8 would become U+FFFD and change the dataset's tokens without a word. */
export function notUtf8Error(file: string, line: number): LoramixError {
  return formatError(file, `not valid UTF-8 (line ${line}); save the file as UTF-8`);
}

/**
 * JSON.parse that also takes the bare NaN / Infinity tokens Python's json module writes (some
 * Super-NI task files have them in metadata); they become null.
 */
export function parseJsonLenient(file: string, text: string, where?: string): unknown {
  const prefix = where ? `${where}: ` : "";
  try {
    return JSON.parse(text);
  } catch (first) {
    const cleaned = replaceNonFinite(text);
    if (cleaned === text) throw formatError(file, `${prefix}invalid JSON (${(first as Error).message})`);
    try {
      return JSON.parse(cleaned);
    } catch (error) {
      throw formatError(file, `${prefix}invalid JSON (${(error as Error).message})`);
    }
  }
}

function replaceNonFinite(text: string): string {
  let out = "";
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    for (const token of ["-Infinity", "Infinity", "NaN"]) {
      if (text.startsWith(token, i)) {
        out += `${text.slice(last, i)}null`;
        i += token.length - 1;
        last = i + 1;
        break;
      }
    }
  }
  return out + text.slice(last);
}
