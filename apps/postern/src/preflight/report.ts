// Runs the preflight and tells the operator: every finding as one line on stderr, then a count.
// Errors fail; warnings fail only when asked (`postern check --strict`).
import type { LoadedConfig } from "../load-config.ts";
import { formatFinding, type PreflightOptions, preflight } from "./index.ts";

export interface PreflightReportOptions extends PreflightOptions {
  /** Warnings count as errors. */
  strict: boolean;
  /** Prefix of the count line, e.g. "postern check". */
  command: string;
}

export interface PreflightVerdict {
  readonly errors: number;
  readonly warnings: number;
  /** True when the command must not go on (errors, or warnings under strict). */
  readonly failed: boolean;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export async function reportPreflight(
  loaded: LoadedConfig,
  options: PreflightReportOptions,
): Promise<PreflightVerdict> {
  const findings = await preflight(loaded, options);
  for (const finding of findings) process.stderr.write(`${formatFinding(loaded.source, finding)}\n`);
  const errors = findings.filter((finding) => finding.severity === "error").length;
  const warnings = findings.length - errors;
  const failed = errors > 0 || (options.strict && warnings > 0);
  if (findings.length > 0) {
    const strictNote = options.strict && warnings > 0 ? " (--strict: warnings fail)" : "";
    process.stderr.write(
      `${options.command}: ${plural(errors, "error")}, ${plural(warnings, "warning")}${strictNote}\n`,
    );
  }
  return { errors, warnings, failed };
}
