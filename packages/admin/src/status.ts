// What `GET /api/status` (and `postern status`) answers: this node, its versions, its listeners,
// sessions open, transactions seen since start, the queue, the plugins.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ListeningAddress } from "@postern/core";
import type { QueueStats } from "@postern/outbound";

export interface Versions {
  /** The @postern/core the server runs on (what "the Postern version" of a server is). */
  readonly core: string | undefined;
  readonly admin: string | undefined;
  readonly node: string;
}

const readVersion = (file: string): string | undefined => {
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
};

/**
 * The version of an installed package, found as Node finds the package (core exports no
 * `./package.json`, so it is read from the node_modules folders resolution would look in).
 */
function installedVersion(name: string): string | undefined {
  const paths = createRequire(import.meta.url).resolve.paths(name) ?? [];
  for (const folder of paths) {
    const version = readVersion(join(folder, name, "package.json"));
    if (version !== undefined) return version;
  }
  return undefined;
}

let versions: Versions | undefined;
/** Read once: they do not change while the process runs. */
export function serverVersions(): Versions {
  versions ??= {
    core: installedVersion("@postern/core"),
    // src/status.ts and dist/status.js both sit one folder below the package's manifest.
    admin: readVersion(fileURLToPath(new URL("../package.json", import.meta.url))),
    node: process.version,
  };
  return versions;
}

export interface Status {
  readonly hostname: string;
  readonly node: string;
  readonly pid: number;
  /** Epoch ms when this process started. */
  readonly startedAt: number;
  readonly uptimeSeconds: number;
  readonly listeners: readonly ListeningAddress[];
  /** SMTP sessions open now. */
  readonly sessions: number;
  /** Transactions ended since this process started, by outcome. */
  readonly transactions: Readonly<Record<string, number>>;
  readonly queue: QueueStats | undefined;
  readonly plugins: readonly string[];
  readonly versions: Versions;
}
