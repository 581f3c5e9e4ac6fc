import { defineCommand } from "citty";
import { Bank } from "../../bank/store.js";
import { bankDistanceMatrix } from "../../distances/matrix.js";
import { usageError } from "../../errors.js";
import { trainBankMlp } from "../../weights/bankMlp.js";
import { bankGram } from "../../weights/gram.js";
import { createProgress, info, interrupt } from "../context.js";
import { integerAtLeast } from "../options.js";

const METRICS = ["kl", "js", "wd", "mmd"] as const;

export default defineCommand({
  meta: {
    name: "train-mlp",
    description: "Train the neural weighting (SPEC §4) on a bank and store it in the bank",
  },
  args: {
    bank: { type: "positional", description: "Bank directory", required: true },
    metric: { type: "string", description: "Distance: kl, js, wd or mmd", required: true },
    hidden: { type: "string", description: "Hidden width H (the paper: 4000)", default: "64" },
    epochs: { type: "string", description: "Full-batch Adam epochs", default: "40" },
    seed: { type: "string", description: "Seed of the initialisation and the 80/20 split", default: "0" },
    lr: { type: "string", description: "Adam learning rate", default: "0.001" },
    threads: { type: "string", description: "Worker threads for the Gram matrix (default: up to 2)" },
  },
  async run({ args }) {
    const metric = args.metric as (typeof METRICS)[number];
    if (!METRICS.includes(metric))
      throw usageError(`--metric must be one of ${METRICS.join(", ")}, got "${args.metric}"`);
    const hidden = integerAtLeast("hidden", args.hidden, 1) ?? 64;
    const epochs = integerAtLeast("epochs", args.epochs, 1) ?? 40;
    const seed = integerAtLeast("seed", args.seed, 0) ?? 0;
    const threads = integerAtLeast("threads", args.threads, 1);
    const learningRate = Number(args.lr);
    if (!(learningRate > 0)) throw usageError(`--lr must be a positive number, got "${args.lr}"`);
    const progress = createProgress();
    const bank = await Bank.open(args.bank);
    try {
      const distances = await bankDistanceMatrix(bank, { metric, signal: interrupt.signal, progress });
      // The Gram matrix first, so that its time (minutes for a large new bank) is reported apart;
      // training then reads it back from the bank's cache.
      const gramStarted = performance.now();
      const gram = await bankGram(bank, { threads, signal: interrupt.signal, progress });
      progress.stop();
      info(
        `Gram matrix of ${gram.hashes.length} adapters (${gram.params} parameters each) in ${((performance.now() - gramStarted) / 1000).toFixed(1)} s`,
      );
      const every = Math.max(1, Math.floor(epochs / 10));
      const started = performance.now();
      const { mlp, key } = await trainBankMlp(bank, distances, {
        metric,
        hidden,
        epochs,
        seed,
        learningRate,
        threads,
        signal: interrupt.signal,
        progress,
        onEpoch: (epoch, loss) => {
          if (epoch % every === 0 || epoch === epochs) {
            const perEpoch = (performance.now() - started) / 1000 / epoch;
            info(
              `epoch ${epoch}/${epochs}: train loss ${loss.toExponential(6)} (${perEpoch.toFixed(2)} s/epoch)`,
            );
          }
        },
      });
      progress.stop();
      const { trainLoss, validLoss, trainIds, validIds } = mlp.meta;
      info(`final train loss ${trainLoss.toExponential(6)} over ${trainIds.length} entries`);
      info(
        validLoss === null
          ? "no validation entries"
          : `final validation loss ${validLoss.toExponential(6)} over ${validIds.length} entries`,
      );
      info(`stored MLP (H=${hidden}, ${metric}, seed ${seed}) in ${bank.dir} as ${key.slice(0, 40)}…`);
    } finally {
      progress.stop();
      bank.close();
    }
  },
});
