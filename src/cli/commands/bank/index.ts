import { availableParallelism } from "node:os";
import { defineCommand } from "citty";
import { indexBank } from "../../../bank/indexBank.js";
import { openBank } from "../../../bank/store.js";
import { LoramixError, usageError } from "../../../errors.js";
import { createProgress, info, interrupt } from "../../context.js";
import { SIDE_ARG, sideOption } from "../../options.js";

export default defineCommand({
  meta: { name: "index", description: "Tokenize and profile every entry whose profile is missing or stale" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    side: SIDE_ARG,
    threads: { type: "string", description: `Tokenizer threads (default ${availableParallelism()})` },
  },
  async run({ args }) {
    const threads = args.threads === undefined ? availableParallelism() : Number(args.threads);
    if (!Number.isInteger(threads) || threads < 1)
      throw usageError(`--threads must be a positive integer, got "${args.threads}"`);
    const bank = await openBank(args.dir);
    const progress = createProgress();
    try {
      const r = await indexBank(bank, {
        side: sideOption(args.side),
        threads,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      const rate =
        r.tokens > 0 && r.seconds > 0
          ? `, ${Math.round(r.tokens / r.seconds).toLocaleString("en-US")} tokens/s`
          : "";
      info(
        `profiled ${r.profiled} entries (${r.tokens.toLocaleString("en-US")} tokens in ${r.seconds.toFixed(1)} s${rate}); ${r.skipped} already fresh`,
      );
      for (const line of r.problems) info(line);
      if (r.problems.length > 0) {
        throw new LoramixError("BANK", `${bank.dir}: ${r.problems.length} entry(ies) could not be profiled`);
      }
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
