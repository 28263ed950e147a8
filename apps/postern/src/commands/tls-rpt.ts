// `postern tls-rpt report --dry-run`: what @postern/tls-rpt would send at its next run — each
// policy domain's report with its session counts and sizes, and each _smtp._tls destination with
// what would become of it (sent, or too large for its size limit) — read from the store the
// config describes, with the config's DNS servers. Nothing is claimed or sent: the running server
// sends reports on its daily schedule.
import type { DestinationOutcome, SentReport } from "@postern/tls-rpt";
import type { Command } from "../command.ts";
import { configOptionsHelp } from "../config-args.ts";
import { runReportDryRun } from "./report-dry-run.ts";

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

  run(argv) {
    return runReportDryRun(argv, {
      command: "tls-rpt",
      pluginName: "@postern/tls-rpt",
      missingCode: "POSTERN_NO_TLS_RPT",
      what: "TLS reports",
      print,
    });
  },
};
