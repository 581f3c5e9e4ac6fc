import { defineCommand } from "citty";
import { listEntries } from "../../../bank/list.js";
import { openBank } from "../../../bank/store.js";
import { textTable } from "../../../report/textTable.js";
import { info, printJson, printResult } from "../../context.js";

export default defineCommand({
  meta: { name: "ls", description: "List the bank's entries" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    json: { type: "boolean", description: "Print the entries as JSON on stdout" },
  },
  async run({ args }) {
    const bank = await openBank(args.dir);
    try {
      const rows = listEntries(bank);
      if (args.json) {
        printJson(rows);
        return;
      }
      const table = [
        ["id", "adapter", "records", "tokens", "profile", "categories"],
        ...rows.map((r) => [
          r.id,
          r.hasAdapter ? "yes" : "no",
          r.records === null ? "-" : String(r.records),
          r.tokens === null ? "-" : String(r.tokens),
          r.profile,
          r.categories.join(", "),
        ]),
      ];
      printResult(textTable(table, { rule: false, alignRight: () => false }));
      const layout = bank.layout();
      info(
        `${rows.length} entries, ${rows.filter((r) => r.hasAdapter).length} with adapters; tokenizer ${bank.tokenizerName}` +
          (layout
            ? `; layout r=${layout.r} alpha=${layout.alpha} on ${layout.targetModules.join(", ")}`
            : ""),
      );
      const moved = bank.baseModelMissing();
      if (moved !== null) info(`warning: ${moved}`);
    } finally {
      bank.close();
    }
  },
});
