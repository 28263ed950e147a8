// SIGHUP (systemd's ExecReload, `kill -HUP`) reloads the whole configuration of `postern start`:
// the file is read and validated again, its preflight run, then core's reload() sets the new
// plugins up and binds new listeners beside the running ones before anything changes. A problem
// at any step is one line naming the file and the key (or the plugin), and the running
// configuration keeps serving. SIGHUP never stops the server. Reloads run one at a time; a SIGHUP
// during one is served after it.
import type { Logger, PosternServer } from "@postern/core";
import { errorLines } from "./error-line.ts";
import type { LoadedConfig } from "./load-config.ts";
import { formatFinding, preflight } from "./preflight/index.ts";
import { limitSetupTime } from "./setup-deadline.ts";

export interface ReloadOptions {
  /** Reads the config again (the same file or embedded default as at start). */
  readonly load: () => Promise<LoadedConfig>;
  readonly setupTimeoutMs: number;
  /** Processes serving the config (--workers): the new one is checked for them too. */
  readonly workers?: number;
  readonly logger: Logger;
  readonly say: (line: string) => void;
}

export function reloadOnHangup(server: PosternServer, options: ReloadOptions): { dispose(): void } {
  const { logger, say } = options;
  let queue: Promise<void> = Promise.resolve();

  const reload = async () => {
    // Known once the file was read; errors from reading it name the file themselves.
    let source: string | undefined;
    try {
      const loaded = await options.load();
      source = loaded.source;
      const findings = await preflight(loaded, { network: false, workers: options.workers ?? 1 });
      const errors = findings.filter((finding) => finding.severity === "error");
      if (errors.length > 0) {
        const line = errors.map((finding) => formatFinding(loaded.source, finding)).join("; ");
        logger.error({ file: loaded.file, errors: errors.length }, `reload refused: ${line}`);
        say(`SIGHUP: ${line}; still serving the previous configuration`);
        return;
      }
      limitSetupTime(loaded.config.plugins, options.setupTimeoutMs);
      await server.reload(loaded.config);
      say(
        `SIGHUP: configuration reloaded from ${loaded.source} (${loaded.config.plugins.length} plugins, listening on ${server
          .addresses()
          .map((address) => `${address.address}:${address.port}`)
          .join(", ")})`,
      );
    } catch (error) {
      const lines = errorLines(error);
      // Errors from a config file name it already; core's (a port in use, a setup) do not.
      const line = lines
        .map((text) => (source === undefined || text.startsWith(source) ? text : `${source}: ${text}`))
        .join("; ");
      logger.error({ err: error }, `reload refused: ${line}`);
      say(`SIGHUP: ${line}; still serving the previous configuration`);
    }
  };

  const onHangup = () => {
    say("SIGHUP: reloading the configuration");
    queue = queue.then(reload);
  };
  process.on("SIGHUP", onHangup);
  return {
    dispose() {
      process.off("SIGHUP", onHangup);
    },
  };
}
