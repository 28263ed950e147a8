// Reloading the listeners' certificates without a restart: on SIGHUP (what operators and
// certbot's deploy hooks send) and when a certificate or key file changes. A renewal writes the
// key and the certificate one after the other, so a change waits `delayMs` for the rest before
// reloading; a reload that fails keeps the certificates in use and is logged, never fatal.
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Logger } from "pino";
import type { ListenerTls } from "./tls-context.ts";

export interface TlsReloadOptions {
  onSighup: boolean;
  watchFiles: boolean;
  delayMs: number;
}

export interface TlsReloader {
  /** Reloads every TLS listener; rejects with the first failure (the other listeners still reload). */
  reload(): Promise<void>;
  close(): void;
}

export function startTlsReload(
  listeners: readonly ListenerTls[],
  options: TlsReloadOptions,
  logger: Logger,
): TlsReloader {
  let queue: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];

  const reloadAll = async (reason: string) => {
    const outcomes = await Promise.allSettled(listeners.map((listener) => listener.reload()));
    let firstError: unknown;
    outcomes.forEach((outcome, index) => {
      const listener = listeners[index]!;
      if (outcome.status === "fulfilled") {
        const certificates = listener.certificates;
        logger.info({ listener: listener.settings.listener, reason, certificates }, "TLS certificates reloaded");
        for (const certificate of certificates.filter((entry) => entry.expired)) {
          logger.warn({ listener: listener.settings.listener, certificate }, "TLS certificate has expired");
        }
      } else {
        firstError ??= outcome.reason;
        logger.error(
          { listener: listener.settings.listener, reason, err: outcome.reason },
          `TLS reload failed, still serving the previous certificates: ${(outcome.reason as Error).message}`,
        );
      }
    });
    if (firstError) throw firstError;
  };

  // One reload at a time, in order; a failed one does not block the next.
  const reload = (reason: string) => {
    const next = queue.then(() => reloadAll(reason));
    queue = next.catch(() => undefined);
    return next;
  };

  const onSighup = () => {
    reload("SIGHUP").catch(() => undefined);
  };
  if (options.onSighup && listeners.length > 0) process.on("SIGHUP", onSighup);

  if (options.watchFiles) {
    // Directories, not files: a renewal usually replaces the file (rename, or a new symlink in
    // certbot's live/ folder), which a watch on the old file would miss.
    const byDirectory = new Map<string, Set<string>>();
    for (const file of listeners.flatMap((listener) => listener.files)) {
      const path = resolve(file);
      const names = byDirectory.get(dirname(path)) ?? new Set<string>();
      names.add(basename(path));
      byDirectory.set(dirname(path), names);
    }
    const changed = () => {
      clearTimeout(timer);
      timer = setTimeout(() => reload("file change").catch(() => undefined), options.delayMs);
      timer.unref();
    };
    for (const [directory, names] of byDirectory) {
      try {
        const watcher = watch(directory, { persistent: false }, (_event, name) => {
          if (!name || names.has(String(name))) changed();
        });
        watcher.on("error", (error) => logger.warn({ err: error, directory }, "cannot watch TLS files any more"));
        watchers.push(watcher);
      } catch (error) {
        logger.warn({ err: error, directory }, "cannot watch TLS files; reload with SIGHUP");
      }
    }
  }

  return {
    reload: () => reload("request"),
    close() {
      process.off("SIGHUP", onSighup);
      clearTimeout(timer);
      for (const watcher of watchers.splice(0)) watcher.close();
    },
  };
}
