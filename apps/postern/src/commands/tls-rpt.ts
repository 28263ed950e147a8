// `postern tls-rpt report --dry-run`: what @postern/tls-rpt would send at its next run — each
// policy domain's report with its session counts and sizes, and each _smtp._tls destination with
// what would become of it (sent, or too large for its size limit) — read from the store the
// config describes, with the config's DNS servers. Nothing is claimed or sent: the running server
// sends reports on its daily schedule.
import { createLogger, createResolver, PosternError } from "@postern/core";
import type { DestinationOutcome, SentReport, TlsRptPlugin } from "@postern/tls-rpt";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { UsageError } from "../usage-error.ts";

const options = {
  ...configOptions,
  "dry-run": { type: "boolean", default: false },
  "include-today": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
} as const;

const bytes = (count: number | undefined) => (count === undefined ? "-" : `${count} B`);
const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;

const verdicts: Record<DestinationOutcome["outcome"], string> = {
  "would-send": "would send",
  sent: "sent",
  refused: "refused",
  failed: "failed",
  "too-large": "too large",
};

function destinationLine(destination: DestinationOutcome): string {
  const uri = destination.kind === "mailto" ? `mailto:${destination.address}` : destination.url;
  const limit = destination.maxBytes !== undefined ? ` (limit ${destination.maxBytes} B)` : "";
  const detail = destination.detail && destination.outcome !== "would-send" ? `: ${destination.detail}` : "";
  return `    ${verdicts[destination.outcome].padEnd(15)}${uri}${limit}${detail}`;
}

function print(reports: readonly SentReport[]): void {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  if (reports.length === 0) {
    out("no TLS report is due (no sessions counted for a finished day that is not reported yet)");
    return;
  }
  for (const report of reports) {
    const counts = `${plural(report.successfulSessions + report.failedSessions, "session")}, ${plural(report.failedSessions, "failure")}`;
    if (report.fileName) {
      out(
        `${report.policyDomain}  ${report.day}  ${counts}${report.status === "too-large" ? "  no report: too large for every destination" : ""}`,
      );
      out(
        `  ${report.fileName}  JSON ${bytes(report.jsonBytes)}, gzip ${bytes(report.gzipBytes)}, ${bytes(report.mailBytes)} as mailed`,
      );
    } else {
      out(`${report.policyDomain}  ${report.day}  ${counts}  no report: ${report.detail ?? report.status}`);
    }
    for (const destination of report.destinations) out(destinationLine(destination));
  }
  const going = reports.filter((report) => report.destinations.some((entry) => entry.outcome === "would-send"));
  out(`-- ${plural(going.length, "report")} would be sent; dry run: nothing was claimed or sent`);
}

export const tlsRptCommand: Command = {
  name: "tls-rpt",
  summary: "TLS reports (RFC 8460): show what the next run would send",
  usage: `Usage: postern tls-rpt report --dry-run [--include-today] [--json]

Shows what @postern/tls-rpt would send at its next run: for every policy domain with TLS sessions
counted on a finished UTC day not reported yet, the sessions and failures, the report's sizes
(JSON, gzip, as mailed), and each destination of the domain's _smtp._tls record as published now —
would send, or too large for its size limit (a "!10m" suffix). It reads the store the config
describes (PostgreSQL or the file store) and asks the config's DNS servers. Nothing is claimed or
sent; the running server sends the reports itself, daily from the plugin's sendHourUtc. Counts a
running server has not flushed yet (every flushInterval, 10 s by default) are not included.

Options:
${configOptionsHelp}
  --dry-run             required: show, do not send
  --include-today       also the UTC day in progress, as counted so far
  --json                machine-readable output
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [subcommand, ...rest] = positionals;
    if (subcommand !== "report") {
      throw new UsageError(
        subcommand
          ? `unknown subcommand "${subcommand}"; expected report`
          : "postern tls-rpt needs a subcommand: report",
      );
    }
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    if (!values["dry-run"]) {
      throw new UsageError(
        "postern tls-rpt report needs --dry-run: the running server sends reports on its daily schedule",
      );
    }
    const { config, source } = await loadConfig(configRequestFrom(values));
    const plugin = config.plugins.find((candidate) => candidate.name === "@postern/tls-rpt") as
      | TlsRptPlugin
      | undefined;
    if (!plugin || typeof plugin.dryRun !== "function") {
      // Not a usage error (exit 2): the command line is fine, the config has no reports (exit 1).
      throw new PosternError(
        "POSTERN_NO_TLS_RPT",
        `${source} has no @postern/tls-rpt plugin, so there are no TLS reports to show`,
      );
    }
    const resolver = createResolver(config.dns);
    // Tomorrow's run reports today, so that is the "now" that includes the day in progress.
    const now = Date.now() + (values["include-today"] ? 86_400_000 : 0);
    const reports = await plugin.dryRun({
      now,
      context: { resolver, hostname: config.hostname, logger: createLogger({ level: "silent" }) },
    });
    if (values.json) {
      const plain = reports.map(({ report: _report, ...report }) => report);
      process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
    } else {
      print(reports);
    }
    return 0;
  },
};
