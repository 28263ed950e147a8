// An observer: one log line when each transaction ends, without taking part in any decision.
import { type Plugin, transactionEnded } from "@postern/core";

export default function lastOutcome(): Plugin {
  return {
    name: "last-outcome",
    setup(server) {
      server.events.on(transactionEnded, ({ transaction, outcome, reply }) => {
        server.logger.info({ queueId: transaction.id, outcome, code: reply?.code }, "transaction ended");
      });
    },
  };
}
