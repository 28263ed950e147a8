// What `postern dmarc report` and `postern tls-rpt report` share: the command line (the `report`
// subcommand, --dry-run required, --include-today, --json), finding the report plugin in the
// config, and asking its dryRun() with the config's DNS servers. Nothing is claimed or sent: the
// running server sends reports on its daily schedule.
import { createLogger, createResolver, type DnsResolver, type Logger, PosternError } from "@postern/core";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { UsageError } from "../usage-error.ts";

export const reportDryRunOptions = {
  ...configOptions,
  "dry-run": { type: "boolean", default: false },
  "include-today": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
} as const;

/** The part of a report plugin this command uses. */
interface DryRunPlugin<Outcome> {
  dryRun(options: {
    now: number;
    context: { resolver: DnsResolver; hostname: string; logger: Logger };
  }): Promise<Outcome[]>;
}

export interface ReportDryRun<Outcome extends { report?: unknown }> {
  /** The command's name: "dmarc", "tls-rpt". */
  readonly command: string;
  readonly pluginName: string;
  /** The error code when the config has no such plugin. */
  readonly missingCode: string;
  /** "DMARC reports", "TLS reports". */
  readonly what: string;
  readonly print: (outcomes: readonly Outcome[]) => void;
}

export async function runReportDryRun<Outcome extends { report?: unknown }>(
  argv: string[],
  spec: ReportDryRun<Outcome>,
): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, reportDryRunOptions);
  const [subcommand, ...rest] = positionals;
  if (subcommand !== "report") {
    throw new UsageError(
      subcommand
        ? `unknown subcommand "${subcommand}"; expected report`
        : `postern ${spec.command} needs a subcommand: report`,
    );
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  if (!values["dry-run"]) {
    throw new UsageError(
      `postern ${spec.command} report needs --dry-run: the running server sends reports on its daily schedule`,
    );
  }
  const { config, source } = await loadConfig(configRequestFrom(values));
  const plugin = config.plugins.find((candidate) => candidate.name === spec.pluginName) as
    | Partial<DryRunPlugin<Outcome>>
    | undefined;
  if (!plugin || typeof plugin.dryRun !== "function") {
    // Not a usage error (exit 2): the command line is fine, the config has no reports (exit 1).
    throw new PosternError(
      spec.missingCode,
      `${source} has no ${spec.pluginName} plugin, so there are no ${spec.what} to show`,
    );
  }
  const resolver = createResolver(config.dns);
  // Tomorrow's run reports today, so that is the "now" that includes the day in progress.
  const now = Date.now() + (values["include-today"] ? 86_400_000 : 0);
  const outcomes = await plugin.dryRun({
    now,
    context: { resolver, hostname: config.hostname, logger: createLogger({ level: "silent" }) },
  });
  if (values.json) {
    const plain = outcomes.map(({ report: _report, ...outcome }) => outcome);
    process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
  } else {
    spec.print(outcomes);
  }
  return 0;
}
