import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "bank", description: "Create, fill, index and check a bank of adapters and datasets" },
  // Each command loads on first use, so the CLI starts fast; spelled out so Vitest and bundlers see every import.
  subCommands: {
    init: () => import("./bank/init.js").then((m) => m.default),
    add: () => import("./bank/add.js").then((m) => m.default),
    "import-sni": () => import("./bank/importSni.js").then((m) => m.default),
    "import-lol": () => import("./bank/importLol.js").then((m) => m.default),
    index: () => import("./bank/index.js").then((m) => m.default),
    ls: () => import("./bank/ls.js").then((m) => m.default),
    verify: () => import("./bank/verify.js").then((m) => m.default),
  },
});
