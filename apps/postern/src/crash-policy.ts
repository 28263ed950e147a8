// What an uncaught exception or unhandled rejection does to a running server. Such an error means
// some code is in a state nobody planned for — a plugin's pool, a half-written file, a counter —
// and serving on hides it while mail keeps flowing through that state. So: log it with its stack,
// stop accepting, give the messages in flight a short while to finish (past it they get 421, never
// 250), and exit 70 (EX_SOFTWARE) for the supervisor (systemd's Restart=on-failure) to start a
// clean process. A second error while stopping, or a stop that hangs, exits at once.
import type { Logger, PosternServer } from "@postern/core";

/** How long messages in flight may take to finish once the process is going down. */
export const crashStopTimeoutMs = 10_000;
/** The exit status of a process stopped by an uncaught error (sysexits.h EX_SOFTWARE). */
export const crashExitCode = 70;

export interface CrashPolicyOptions {
  readonly logger: Logger;
  /** Writes one line for the operator (stderr). */
  readonly say: (line: string) => void;
  readonly stopTimeoutMs?: number;
  /** Ends the process (tests pass their own). */
  readonly exit?: (code: number) => void;
}

export function exitOnUncaught(server: PosternServer, options: CrashPolicyOptions): { dispose(): void } {
  const { logger, say } = options;
  const stopTimeoutMs = options.stopTimeoutMs ?? crashStopTimeoutMs;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let crashing = false;
  const onUncaught = (error: unknown, origin: string) => {
    const text = error instanceof Error ? error.message : String(error);
    logger.fatal({ err: error, origin }, "uncaught error: stopping (the supervisor should restart the server)");
    if (crashing) {
      say(`another uncaught error while stopping: exiting now (${text})`);
      exit(crashExitCode);
      return;
    }
    crashing = true;
    say(
      `uncaught error: ${text}; stopping, messages in flight get ${stopTimeoutMs / 1000} s, then exit ${crashExitCode}`,
    );
    // Past the stop's own deadline something hangs: the process goes anyway.
    const deadline = setTimeout(() => exit(crashExitCode), stopTimeoutMs + 5000);
    server
      .stop({ timeoutMs: stopTimeoutMs })
      .catch((stopError: unknown) => logger.error({ err: stopError }, "stop after an uncaught error failed"))
      .finally(() => {
        clearTimeout(deadline);
        exit(crashExitCode);
      });
  };
  const onRejection = (reason: unknown) => onUncaught(reason, "unhandledRejection");
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onRejection);
  return {
    dispose() {
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onRejection);
    },
  };
}
