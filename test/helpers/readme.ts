import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./shared.js";

export const README = readFileSync(join(REPO, "README.md"), "utf8");

/** Shell words of one command line: whitespace-separated, '…' and "…" kept whole. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? (m[3] as string));
}

/** The README's section under the heading `title` (any level), up to the next heading. */
export function readmeSection(title: string): string {
  const heading = new RegExp(`^#+ ${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`, "m").exec(README);
  if (heading === null) throw new Error(`README.md has no section "${title}"`);
  const rest = README.slice(heading.index + heading[0].length);
  const end = rest.search(/^#+ /m);
  return end < 0 ? rest : rest.slice(0, end);
}

/**
 * Every command line in the sh blocks of `text` (the whole README by default) as shell words,
 * continuation lines joined, comments dropped, `a && b` split.
 */
export function shellLines(text = README): string[][] {
  const out: string[][] = [];
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = (block[1] as string).replace(/\\\n\s*/g, " ");
    for (const line of joined.split("\n")) {
      for (const part of line.replace(/\s#.*$/, "").split("&&")) {
        const w = words(part.trim());
        if (w.length > 0) out.push(w);
      }
    }
  }
  return out;
}

/** Every `npx loramix …` of `text`, without the `npx loramix`. */
export function shellCommands(text = README): string[][] {
  return shellLines(text)
    .filter((w) => w[0] === "npx" && w[1] === "loramix")
    .map((w) => w.slice(2));
}
