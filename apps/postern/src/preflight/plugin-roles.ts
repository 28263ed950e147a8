// A server without a plugin that claims recipients refuses every RCPT TO (550 5.7.1, no open
// relay), and one without a plugin that stores mail defers every message (451 4.3.0): both start
// without complaint and fail every message, which is almost never what the operator meant.
import type { Plugin } from "@postern/core";
import { type Finding, warning } from "./finding.ts";

export function checkPluginRoles(plugins: readonly Plugin[]): Finding[] {
  const findings: Finding[] = [];
  if (!plugins.some((plugin) => plugin.hooks?.rcptTo)) {
    findings.push(
      warning(
        "plugins",
        "no plugin claims recipients (rcptTo), so every RCPT TO is refused with 550 5.7.1; add @postern/recipients",
      ),
    );
  }
  if (!plugins.some((plugin) => plugin.hooks?.queue)) {
    findings.push(
      warning(
        "plugins",
        "no plugin stores mail (queue), so every message is deferred with 451 4.3.0; add @postern/store-maildir or another store",
      ),
    );
  }
  return findings;
}
