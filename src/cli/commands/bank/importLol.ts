import { defineCommand } from "citty";
import { importLol } from "../../../bank/importLol.js";
import { openBank } from "../../../bank/store.js";
import { createProgress, info, interrupt } from "../../context.js";

export default defineCommand({
  meta: {
    name: "import-lol",
    description: "Add local snapshots of Lots-of-LoRAs adapter and dataset repos (plain folders or HF cache)",
  },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    root: {
      type: "string",
      required: true,
      description: "Folder holding the repos, or a Hugging Face cache",
    },
    replace: { type: "boolean", description: "Replace entries that exist (default: keep them)" },
  },
  async run({ args }) {
    const bank = await openBank(args.dir);
    const progress = createProgress();
    try {
      const r = await importLol(bank, {
        root: args.root,
        replace: args.replace === true,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      info(`added ${r.added.length} entries, kept ${r.existing.length} existing`);
      if (r.withoutAdapter.length > 0) info(`${r.withoutAdapter.length} without an adapter (dataset only)`);
      for (const path of r.adaptersWithoutData) info(`skipped adapter without a dataset: ${path}`);
      for (const path of r.duplicates) info(`skipped second copy of a task: ${path}`);
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
