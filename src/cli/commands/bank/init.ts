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
    "base-model": {
      type: "string",
      description:
        "The adapters' base model: a hub id (mistralai/Mistral-7B-Instruct-v0.2) or a model directory. Generated adapters name it in base_model_name_or_path, and `bank add` refuses adapters whose shapes do not fit it (Llama-architecture models)",
    },
  },
  async run({ args }) {
    const bank = await initBank(args.dir, {
      tokenizer: args.tokenizer,
      ...(args["base-model"] !== undefined ? { baseModel: args["base-model"] } : {}),
    });
    info(
      `created bank ${bank.dir} (tokenizer ${bank.tokenizerName}, vocabulary ${bank.vocabSize}${bank.baseModel ? `, base model ${bank.baseModel}` : ""})`,
    );
    bank.close();
  },
});
