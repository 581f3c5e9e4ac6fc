import { parquetWriteFile } from "hyparquet-writer";

/** Writes `input`, `output` (list of strings, as on the Lots-of-LoRAs hub) and `id` columns. */
export function writeRecordsParquet(
  filename: string,
  rows: { input: string; output: string[]; id: string }[],
): void {
  parquetWriteFile({
    filename,
    columnData: [
      { name: "input", data: rows.map((r) => r.input) },
      { name: "output", data: rows.map((r) => r.output) },
      { name: "id", data: rows.map((r) => r.id) },
    ],
    schema: [
      { name: "root", num_children: 3 },
      { name: "input", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "output", repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "id", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
    ],
  });
}
