import { type CommandDef, defineCommand } from "citty";

const load = (name: string) => () =>
  import(`./bank/${name}.js`).then((m: { default: CommandDef }) => m.default);

export default defineCommand({
  meta: { name: "bank", description: "Create, fill, index and check a bank of adapters and datasets" },
  subCommands: {
    init: load("init"),
    add: load("add"),
    "import-sni": load("importSni"),
    "import-lol": load("importLol"),
    index: load("index"),
    ls: load("ls"),
    verify: load("verify"),
  },
});
