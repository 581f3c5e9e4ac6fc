import { defineCommand } from "citty";
import { addEntry } from "../../../bank/add.js";
import { openBank } from "../../../bank/store.js";
import type { DatasetOptions } from "../../../datasets/load.js";
import { usageError } from "../../../errors.js";
import { info, interrupt } from "../../context.js";

const FORMATS = ["sni", "jsonl", "json", "parquet"] as const;

export default defineCommand({
  meta: { name: "add", description: "Add one entry: a dataset and, optionally, its adapter" },
  args: {
    dir: { type: "positional", required: true, description: "Bank directory" },
    id: { type: "string", required: true, description: "Entry id ([A-Za-z0-9_.-]+)" },
    data: { type: "string", required: true, description: "Dataset file or directory" },
    adapter: { type: "string", description: "PEFT LoRA directory (omit for a dataset-only entry)" },
    format: { type: "string", description: `Dataset format: ${FORMATS.join(", ")} (default: from the file)` },
    "input-field": { type: "string", description: "Field holding the input (default input)" },
    "output-field": { type: "string", description: "Field holding the output(s) (default output)" },
    "id-field": { type: "string", description: "Field holding the record id (default id)" },
    replace: { type: "boolean", description: "Replace an entry with the same id" },
  },
  async run({ args }) {
    const format = args.format;
    if (format !== undefined && !(FORMATS as readonly string[]).includes(format)) {
      throw usageError(`--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
    }
    const dataOptions: DatasetOptions = {
      ...(format !== undefined ? { format: format as (typeof FORMATS)[number] } : {}),
      ...(args["input-field"] !== undefined ? { inputField: args["input-field"] } : {}),
      ...(args["output-field"] !== undefined ? { outputField: args["output-field"] } : {}),
      ...(args["id-field"] !== undefined ? { idField: args["id-field"] } : {}),
    };
    const bank = await openBank(args.dir);
    try {
      const entry = await addEntry(bank, {
        id: args.id,
        data: args.data,
        ...(args.adapter !== undefined ? { adapter: args.adapter } : {}),
        dataOptions,
        replace: args.replace === true,
        signal: interrupt.signal,
      });
      info(
        `added "${entry.id}"${entry.adapterPath ? "" : " (dataset only)"}; run \`loramix bank index\` to profile it`,
      );
    } finally {
      bank.close();
    }
  },
});
