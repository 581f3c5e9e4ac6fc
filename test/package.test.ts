import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "./helpers/shared.js";

const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  exports: Record<string, string | { types: string; import: string }>;
};

/** The main entry, on purpose: a name added or dropped here is a change to the public API. */
const MAIN = [
  "Bank",
  "LoramixError",
  "METRICS",
  "MIX_MODES",
  "PROFILE_SIDES",
  "WEIGHT_METHODS",
  "addEntry",
  "evaluate",
  "generateAdapter",
  "hfToGguf",
  "importLol",
  "importSni",
  "indexBank",
  "initBank",
  "listEntries",
  "loadDataset",
  "mixAdapters",
  "openBackend",
  "openBank",
  "peftToGguf",
  "profileRecords",
  "runDemo",
  "runLoo",
  "trainBankMlp",
  "trainLora",
  "verifyBank",
];

/** A subpath's source module (vitest runs the TypeScript, so no build is needed). */
function layer(name: string): Promise<Record<string, unknown>> {
  return import(/* @vite-ignore */ join(REPO, "src", name, "index.ts"));
}

describe("package exports", () => {
  it("the main entry exports the pipeline and nothing else", async () => {
    const main = await import("../src/index.js");
    expect(Object.keys(main).sort()).toEqual([...MAIN].sort());
  });

  it("every src folder with an index.ts is a subpath pointing at its built file, and each loads", async () => {
    const folders = readdirSync(join(REPO, "src"), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(REPO, "src", d.name, "index.ts")))
      .map((d) => d.name)
      .sort();
    const subpaths = Object.keys(pkg.exports)
      .filter((k) => k !== "." && k !== "./package.json")
      .map((k) => k.slice(2))
      .sort();
    expect(subpaths).toEqual(folders);
    expect(folders.length).toBeGreaterThanOrEqual(10);
    for (const name of folders) {
      expect(pkg.exports[`./${name}`]).toEqual({
        types: `./dist/${name}/index.d.ts`,
        import: `./dist/${name}/index.js`,
      });
      const mod = await layer(name);
      expect(Object.keys(mod).length, name).toBeGreaterThan(0);
    }
  });

  it("every name of the main entry is also reachable from its layer's subpath", async () => {
    const main = await import("../src/index.js");
    const all = new Set<string>();
    for (const key of Object.keys(pkg.exports).filter((k) => k !== "." && k !== "./package.json")) {
      for (const name of Object.keys(await layer(key.slice(2)))) all.add(name);
    }
    const missing = Object.keys(main).filter((n) => n !== "LoramixError" && !all.has(n));
    expect(missing).toEqual([]);
  });

  it("the README's library example imports only names of the main entry", async () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const imports = [...readme.matchAll(/import \{([^}]+)\} from "loramix";/g)].flatMap((m) =>
      (m[1] as string).split(",").map((s) => s.trim()),
    );
    expect(imports.length).toBeGreaterThan(0);
    for (const name of imports) expect(MAIN, name).toContain(name);
  });

  it("the bench scripts import only names their dist module exports", async () => {
    // They run after a build, outside vitest and tsc: a renamed or moved export breaks them silently.
    const bench = join(REPO, "bench");
    let checked = 0;
    for (const file of readdirSync(bench).filter((f) => f.endsWith(".mjs"))) {
      const text = readFileSync(join(bench, file), "utf8");
      for (const m of text.matchAll(/import \{([^}]+)\} from "\.\.\/dist\/([^"]+)\.js";/g)) {
        const module =
          (m[2] as string) === "index"
            ? await import("../src/index.js")
            : await layer((m[2] as string).replace(/\/index$/, ""));
        for (const name of (m[1] as string)
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)) {
          expect(Object.keys(module), `${file}: ${name} from dist/${m[2]}`).toContain(name);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(5);
  });
});
