// What a preflight check reports: an error (the server would not start, or would fail mail) or a
// warning (it would run, but probably not as meant), each under the config key it is about.

export type Severity = "error" | "warning";

export interface Finding {
  readonly severity: Severity;
  /** The config key, e.g. "listeners.0.certificate" or "plugins.1.options.root"; "" for the whole config. */
  readonly key: string;
  readonly message: string;
}

export function error(key: string, message: string): Finding {
  return { severity: "error", key, message };
}

export function warning(key: string, message: string): Finding {
  return { severity: "warning", key, message };
}

/** One line: "postern.yaml: listeners.0.key: …" or "postern.yaml: warning: plugins: …". */
export function formatFinding(source: string, finding: Finding): string {
  const where = [source, finding.severity === "warning" ? "warning" : "", finding.key].filter(Boolean).join(": ");
  return `${where}: ${finding.message}`;
}
