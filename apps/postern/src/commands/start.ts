// `postern start`: loads the config (or the embedded default), starts the server and serves until
// SIGTERM/SIGINT, then stops gracefully — transactions in flight finish, idle sessions get 421.
import { createServer, PosternError } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { errorLine } from "../error-line.ts";
import { loadConfig } from "../load-config.ts";
import { watchShutdownSignals } from "../shutdown-signals.ts";
import { UsageError } from "../usage-error.ts";

function say(line: string): void {
  process.stderr.write(`postern: ${line}\n`);
}

export const start: Command = {
  name: "start",
  summary: "run the mail server (the config file, or the embedded default)",
  usage: `Usage: postern start [-c <file>] [--domain <domain>]... [--listen <addr[:port]>] [--port <port>]

Starts the server and serves until SIGTERM or SIGINT, then stops gracefully: messages being
received are finished, idle sessions get 421. A second signal stops at once.

Without a config file the embedded default runs: it listens on 127.0.0.1:2525 (plaintext), accepts
mail for localhost and every --domain, and stores it in ./data/maildir/<domain>/<user>/.

Options:
${configOptionsHelp}
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, configOptions);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { config, source, file, summary } = await loadConfig(configRequestFrom(values));
    const server = createServer(config);
    const logger = server.context.logger;

    // A bug in one session must not take the others down: log it and keep serving.
    const onUncaught = (error: unknown) => {
      logger.error({ err: error }, "uncaught error; still serving");
      // One line here; the stack is in the log.
      say(`uncaught error (still serving): ${error instanceof Error ? error.message : String(error)}`);
    };
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    const shutdown = watchShutdownSignals((signal) => say(`${signal} again: stopping now`));

    try {
      await server.start();
    } catch (error) {
      if (!(error instanceof PosternError)) throw error;
      // e.g. "postern.yaml: listeners.0: cannot listen on 127.0.0.1:25: EADDRINUSE". The process
      // exits right after, which also closes any listener that did open.
      process.stderr.write(`${file ?? "postern start"}: ${errorLine(error)}\n`);
      shutdown.dispose();
      return 1;
    }
    if (summary) say(summary);
    for (const [index, address] of server.addresses().entries()) {
      const listener = config.listeners[index]!;
      const host = address.address.includes(":") ? `[${address.address}]` : address.address;
      say(`listening on ${host}:${address.port} (tls ${listener.tls}, auth ${listener.auth}; config ${source})`);
    }

    const signal = await shutdown.requested;
    say(`${signal} received: stopping (finishing messages in flight; send ${signal} again to stop at once)`);
    await server.stop();
    shutdown.dispose();
    say("stopped");
    return 0;
  },
};
