import { defineCommand } from "citty";
import { importSni } from "../../../bank/importSni.js";
import { openBank } from "../../../bank/store.js";
import { createProgress, info, interrupt } from "../../context.js";

export default defineCommand({
  meta: { name: "import-sni", description: "Add Super-NaturalInstructions task files (and their adapters)" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    tasks: { type: "string", required: true, description: "Directory of taskNNN_name.json files" },
    adapters: { type: "string", description: "Directory of adapters named <task name> or taskNNN" },
    replace: { type: "boolean", description: "Replace entries that exist (default: keep them)" },
  },
  async run({ args }) {
    const bank = await openBank(args.dir);
    const progress = createProgress();
    try {
      const r = await importSni(bank, {
        tasks: args.tasks,
        ...(args.adapters !== undefined ? { adapters: args.adapters } : {}),
        replace: args.replace === true,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      info(`added ${r.added.length} entries, kept ${r.existing.length} existing`);
      if (r.withoutAdapter.length > 0) {
        info(`${r.withoutAdapter.length} without an adapter (dataset only): ${r.withoutAdapter.join(", ")}`);
      }
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
