// @postern/transaction-log — one structured log line per transaction, and the recorder that
// builds each transaction's story from the observer channel (read by @postern/admin and
// @postern/tracing too).
import { type Plugin, parseOptions } from "@postern/core";
import { z } from "zod";
import { logFields } from "./log-line.ts";
import { recorderFor } from "./recorder.ts";

export type { TrailDetail } from "./log-line.ts";
export { logFields, trailEntry } from "./log-line.ts";
export type {
  RecipientOutcome,
  RecipientRecord,
  RecorderOptions,
  TrailStep,
  TransactionRecord,
} from "./recorder.ts";
export { recorderFor, TransactionRecorder } from "./recorder.ts";

const pluginName = "@postern/transaction-log";

export const transactionLogOptionsSchema = z.strictObject({
  /** The pino level of the line. */
  level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /** Which hook calls the line names: those that answered or failed (default), all, or none. */
  trail: z.enum(["answers", "all", "none"]).default("answers"),
  /** Also log transactions abandoned before DATA with no recipient refused (RSET, QUIT after MAIL). */
  abandoned: z.boolean().default(false),
});

export type TransactionLogOptions = z.input<typeof transactionLogOptionsSchema>;

export default function transactionLog(input: TransactionLogOptions = {}): Plugin {
  const options = parseOptions(transactionLogOptionsSchema, input, pluginName);
  let unsubscribe: (() => void) | undefined;
  return {
    name: pluginName,
    setup(context) {
      const log = context.logger.child({ plugin: pluginName });
      unsubscribe = recorderFor(context).subscribe((record) => {
        const quiet =
          record.outcome === "abandoned" &&
          !options.abandoned &&
          record.recipients.every((recipient) => recipient.outcome === "accepted");
        if (quiet) return;
        log[options.level](logFields(record, options.trail), "transaction");
      });
    },
    close() {
      unsubscribe?.();
    },
  } satisfies Plugin;
}
