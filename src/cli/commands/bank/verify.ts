import { defineCommand } from "citty";
import { openBank } from "../../../bank/store.js";
import { verifyBank } from "../../../bank/verify.js";
import { LoramixError } from "../../../errors.js";
import { createProgress, info, interrupt, printJson, printResult } from "../../context.js";
import { JSON_OPTION } from "../../options.js";

export default defineCommand({
  meta: { name: "verify", description: "Re-hash adapters and datasets, re-check layouts and profiles" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    ...JSON_OPTION,
  },
  async run({ args }) {
    const bank = await openBank(args.dir);
    const progress = createProgress();
    try {
      const report = await verifyBank(bank, { signal: interrupt.signal, progress });
      progress.stop();
      // The problems are the result: JSON or lines on stdout, then the exit status says ok or not.
      if (args.json) printJson({ dir: bank.dir, entries: report.entries, problems: report.problems });
      else for (const p of report.problems) printResult(`${p.kind}: ${p.message}`);
      if (report.problems.length > 0) {
        throw new LoramixError(
          "BANK",
          `${bank.dir}: ${report.problems.length} problem(s) in ${report.entries} entries`,
        );
      }
      info(`${bank.dir}: ${report.entries} entries, all files match, all profiles fresh`);
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
