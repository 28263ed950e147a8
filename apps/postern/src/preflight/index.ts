// The preflight: what `postern check` verifies beyond the config's shape, and the part of it
// `postern start` runs before it starts anything. Every check runs and every finding is kept, so
// one run names every problem.
import type { LoadedConfig } from "../load-config.ts";
import { checkCertificates } from "./certificates.ts";
import { checkDirectories } from "./directories.ts";
import { checkDkimKeys } from "./dkim-keys.ts";
import { checkDnsServers } from "./dns-servers.ts";
import type { Finding } from "./finding.ts";
import { checkOpenRelay } from "./open-relay.ts";
import { checkPluginRoles } from "./plugin-roles.ts";
import { checkWorkers } from "./workers.ts";

export type { Finding, Severity } from "./finding.ts";
export { formatFinding } from "./finding.ts";

export interface PreflightOptions {
  /** Also ask the configured DNS servers a question (check does; start does not wait for it). */
  network: boolean;
  /** Processes of `postern start --workers N` that will serve the config (default 1). */
  workers?: number;
}

export async function preflight(loaded: LoadedConfig, options: PreflightOptions): Promise<Finding[]> {
  const { config, directory } = loaded;
  const checks: Promise<Finding[]>[] = [
    checkCertificates(config, directory),
    checkDirectories(config, directory),
    checkDkimKeys(config.plugins, directory),
    Promise.resolve(checkPluginRoles(config.plugins)),
    Promise.resolve(checkOpenRelay(config)),
    Promise.resolve(checkWorkers(config.plugins, options.workers ?? 1)),
  ];
  if (options.network) checks.push(checkDnsServers(config));
  return (await Promise.all(checks)).flat();
}
