// What `postern start --workers N` (N > 1) cannot share between its worker processes. Each worker
// runs its own copy of every plugin, so state a plugin keeps in the process is kept N times:
//
// - @postern/outbound's filesystem queue is an error. A spool directory is owned by one process
//   (its lock, core's acquireFileLock), so the second worker could not set the plugin up. Per-worker
//   spools (<dir>/worker-<n>) were the other way, and were not taken: a message queued by worker 3
//   would wait for worker 3 alone, `postern queue` and the admin UI would see one spool of N, and
//   going from 4 workers to 2 would leave two spools that nobody delivers, without a word. The
//   PostgreSQL queue is built for several delivering processes (several nodes already), so with
//   workers the queue lives there.
// - Limits and greylisting kept in memory are warnings: they work, but each worker counts its own
//   share (a limit of 100 becomes N × 100; a retry reaching another worker is greylisted again).
// - @postern/metrics and @postern/admin are warnings: every worker answers on the shared port with
//   its own counters and its own recent transactions.
import type { Plugin } from "@postern/core";
import { originOf } from "../plugin-options.ts";
import { error, type Finding, warning } from "./finding.ts";

/** The kind of queue store @postern/outbound was made with ("fs", "postgres", "custom"). */
function outboundQueueKind(plugin: Plugin): string | undefined {
  if (plugin.name !== "@postern/outbound") return undefined;
  const kind = (plugin as Plugin & { store?: { kind?: unknown } }).store?.kind;
  return typeof kind === "string" ? kind : undefined;
}

function options(plugin: Plugin): Record<string, unknown> | undefined {
  const given = originOf(plugin)?.options;
  return typeof given === "object" && given !== null ? (given as Record<string, unknown>) : undefined;
}

export function checkWorkers(plugins: readonly Plugin[], workers: number): Finding[] {
  if (workers <= 1) return [];
  const findings: Finding[] = [];
  const each = `each of the ${workers} workers`;
  for (const [index, plugin] of plugins.entries()) {
    const key = `plugins.${index}`;
    if (outboundQueueKind(plugin) === "fs") {
      findings.push(
        error(
          `${key}.options.queue`,
          `@postern/outbound's filesystem queue is owned by one process, and --workers ${workers} starts ${workers}; ` +
            'use the PostgreSQL queue (queue: { type: "postgres", connectionString: … }), which every worker shares, or run one worker',
        ),
      );
    }
    const given = options(plugin);
    switch (plugin.name) {
      case "@postern/rate-limit":
        if (given && given.redis === undefined) {
          findings.push(
            warning(
              key,
              `@postern/rate-limit counts in memory, so ${each} counts on its own and a limit lets through up to ${workers} times as much; set redis to share the counters`,
            ),
          );
        }
        break;
      case "@postern/greylist":
        if (given && given.redis === undefined && given.store === undefined) {
          findings.push(
            warning(
              key,
              `@postern/greylist keeps its triplets in memory, so a retry reaching another worker than the first attempt is greylisted again; set redis to share them`,
            ),
          );
        }
        break;
      case "@postern/metrics":
        findings.push(
          warning(
            key,
            `@postern/metrics: ${each} answers on the metrics port with its own counters, so a scrape sees one worker's; run one worker or add up per-worker figures elsewhere`,
          ),
        );
        break;
      case "@postern/admin": {
        const history = given?.history as { postgres?: unknown } | undefined;
        if (history?.postgres === undefined) {
          findings.push(
            warning(
              key,
              `@postern/admin keeps recent transactions in memory, so ${each} shows only its own; set history.postgres to see them all`,
            ),
          );
        }
        break;
      }
    }
  }
  return findings;
}
