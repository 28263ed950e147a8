// `postern dmarc report --dry-run`: what @postern/dmarc-reports would send at its next run — each
// policy domain's report with its records, messages and sizes, and each rua destination with what
// would become of it — read from the store the config describes, with the config's DNS servers.
// Nothing is claimed or sent: the running server sends reports on its daily schedule.
import type { DestinationOutcome, ReportOutcome } from "@postern/dmarc-reports";
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
  "not-authorised": "not authorised",
  "override-elsewhere": "not authorised",
  "unsupported-scheme": "unsupported",
};

function destinationLine(destination: DestinationOutcome): string {
  const notes = [
    destination.external && destination.outcome === "would-send" ? "external, authorised" : "",
    destination.maxBytes !== undefined ? `limit ${destination.maxBytes} B` : "",
  ].filter(Boolean);
  const detail = destination.detail && destination.outcome !== "would-send" ? `: ${destination.detail}` : "";
  return `    ${verdicts[destination.outcome].padEnd(15)}${destination.uri}${notes.length > 0 ? ` (${notes.join(", ")})` : ""}${detail}`;
}

function print(outcomes: readonly ReportOutcome[]): void {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  if (outcomes.length === 0) {
    out("no DMARC report is due (no evaluations counted for a finished day that is not reported yet)");
    return;
  }
  for (const outcome of outcomes) {
    const counts = `${plural(outcome.records, "record")}, ${plural(outcome.messages, "message")}`;
    if (outcome.status === "dry-run") {
      out(`${outcome.policyDomain}  ${outcome.day}  ${counts}`);
      out(
        `  ${outcome.fileName}  XML ${bytes(outcome.xmlBytes)}, gzip ${bytes(outcome.gzipBytes)}, ${bytes(outcome.encodedBytes)} as mailed`,
      );
    } else {
      out(`${outcome.policyDomain}  ${outcome.day}  ${counts}  no report: ${outcome.detail ?? outcome.status}`);
    }
    for (const destination of outcome.destinations) out(destinationLine(destination));
  }
  const going = outcomes.filter((outcome) => outcome.destinations.some((entry) => entry.outcome === "would-send"));
  out(`-- ${plural(going.length, "report")} would be sent; dry run: nothing was claimed or sent`);
}

export const dmarc: Command = {
  name: "dmarc",
  summary: "DMARC aggregate reports: show what the next run would send",
  usage: `Usage: postern dmarc report --dry-run [--include-today] [--json]

Shows what @postern/dmarc-reports would send at its next run: for every policy domain with DMARC
evaluations counted on a finished UTC day not reported yet, the report's records, messages and
sizes, and each rua destination of the domain's DMARC record as published now — would send, too
large for its size limit, not authorised (an external destination without its _report._dmarc
record), unsupported. It reads the store the config describes (PostgreSQL or the file store) and
asks the config's DNS servers. Nothing is claimed or sent; the running server sends the reports
itself, daily at the plugin's sendHourUtc. Counts a running server has not flushed yet (every
flushInterval, 10 s by default) are not included.

Options:
${configOptionsHelp}
  --dry-run             required: show, do not send
  --include-today       also the UTC day in progress, as counted so far
  --json                machine-readable output
  -h, --help            show this help`,

  run(argv) {
    return runReportDryRun(argv, {
      command: "dmarc",
      pluginName: "@postern/dmarc-reports",
      missingCode: "POSTERN_NO_DMARC_REPORTS",
      what: "DMARC reports",
      print,
    });
  },
};
