import { defineCommand } from "citty";
import { initBank } from "../../../bank/store.js";
import { info } from "../../context.js";

export default defineCommand({
  meta: { name: "init", description: "Create an empty bank directory" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory (created if missing)" },
    tokenizer: {
      type: "string",
      default: "mistral",
      description: '"mistral" or a tokenizer.json (or a directory holding one); copied into the bank',
    },
  },
  async run({ args }) {
    const bank = await initBank(args.dir, { tokenizer: args.tokenizer });
    info(`created bank ${bank.dir} (tokenizer ${bank.tokenizerName}, vocabulary ${bank.vocabSize})`);
    bank.close();
  },
});
