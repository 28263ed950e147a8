// `postern start`: loads the config (or the embedded default), checks what the server depends on,
// starts it and serves until SIGTERM/SIGINT, then stops gracefully — transactions in flight
// finish, idle sessions get 421. SIGHUP reloads the whole configuration (reload.ts); an uncaught
// error stops the process (crash-policy.ts).
import { constants } from "node:os";
import { createServer, PosternError } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { reloadOnHangup } from "../config-reload.ts";
import { exitOnUncaught } from "../crash-policy.ts";
import { errorLine } from "../error-line.ts";
import { loadConfig } from "../load-config.ts";
import { reportPreflight } from "../preflight/report.ts";
import { defaultSetupTimeoutMs, limitSetupTime } from "../setup-deadline.ts";
import { watchShutdownSignals } from "../shutdown-signals.ts";
import { UsageError } from "../usage-error.ts";

const options = { ...configOptions, "setup-timeout": { type: "string" } } as const;

function say(line: string): void {
  process.stderr.write(`postern: ${line}\n`);
}

function setupTimeoutMs(text: string | undefined): number {
  if (text === undefined) return defaultSetupTimeoutMs;
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(`--setup-timeout: expected seconds, more than 0 and at most 3600 (got "${text}")`);
  }
  return Math.round(seconds * 1000);
}

export const start: Command = {
  name: "start",
  summary: "run the mail server (the config file, or the embedded default)",
  usage: `Usage: postern start [-c <file>] [--setup-timeout <seconds>] [--domain <domain>]... [--listen <addr[:port]>] [--port <port>]

Checks what the server depends on (TLS files, the spool and Maildir roots, DKIM keys: the checks of
\`postern check\` but the DNS probe), starts the server and serves until SIGTERM or SIGINT, then
stops gracefully: messages being received are finished, idle sessions get 421. A second signal
stops at once. SIGHUP reloads the configuration: a bad one is named in one line and the running
one keeps serving; a good one serves new sessions while sessions in flight finish on the old one.
An uncaught error is logged, the server stops accepting, messages in flight get 10 s to finish
(then 421), and the process exits 70 for its supervisor to restart it.

Without a config file the embedded default runs: it listens on 127.0.0.1:2525 (plaintext), accepts
mail for localhost and every --domain, and stores it in ./data/maildir/<domain>/<user>/.

Options:
${configOptionsHelp}
  --setup-timeout <s>   how long each plugin's setup may take before start fails naming it
                        (default ${defaultSetupTimeoutMs / 1000})
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const setupTimeout = setupTimeoutMs(values["setup-timeout"]);

    // Until the server listens there is nothing to finish: a signal during start-up stops at once
    // (a setup that hangs must not need a second signal).
    let serving = false;
    const shutdown = watchShutdownSignals((signal) => say(`${signal} again: stopping now`));
    void shutdown.requested.then((signal) => {
      if (serving) return;
      say(`${signal} during start-up: stopping`);
      process.exit(128 + constants.signals[signal]);
    });

    // The folder relative paths on the command line mean; loadConfig moves into the config's.
    const startDir = process.cwd();
    const loaded = await loadConfig(configRequestFrom(values));
    const { config, source, file, summary } = loaded;
    const verdict = await reportPreflight(loaded, { network: false, strict: false, command: "postern start" });
    if (verdict.failed) {
      shutdown.dispose();
      return 1;
    }
    limitSetupTime(config.plugins, setupTimeout);
    // SIGHUP reloads everything, the certificates with the rest.
    const server = createServer(config, { certificatesOnSighup: false });
    const logger = server.context.logger;
    const crashPolicy = exitOnUncaught(server, { logger, say });

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
    serving = true;

    // Without a handler SIGHUP would end the process (systemd's ExecReload sends it).
    const hangup = reloadOnHangup(server, {
      load: () => loadConfig(configRequestFrom(values), startDir, { fresh: true }),
      setupTimeoutMs: setupTimeout,
      logger,
      say,
    });

    if (summary) say(summary);
    for (const [index, address] of server.addresses().entries()) {
      const listener = config.listeners[index]!;
      const host = address.address.includes(":") ? `[${address.address}]` : address.address;
      say(`listening on ${host}:${address.port} (tls ${listener.tls}, auth ${listener.auth}; config ${source})`);
    }

    const signal = await shutdown.requested;
    say(`${signal} received: stopping (finishing messages in flight; send ${signal} again to stop at once)`);
    await server.stop();
    hangup.dispose();
    crashPolicy.dispose();
    shutdown.dispose();
    say("stopped");
    return 0;
  },
};
