// Preloaded into each benchmarked loramix process (`node --import`): records its peak resident
// memory, worker threads included, in the file named by LORAMIX_RSS_FILE when it exits.
import { writeFileSync } from "node:fs";

const file = process.env.LORAMIX_RSS_FILE;
if (file) process.on("exit", () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
