// pino JSON logs. Every line from a session carries its id; hook lines add plugin, hook, queue ID.
import { type DestinationStream, type Logger, pino } from "pino";

export interface LogOptions {
  level?: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

/** The server's logger; `destination` (stdout when left out) lets tests read the lines it writes. */
export function createLogger(options: LogOptions = {}, destination?: DestinationStream): Logger {
  const settings = { level: options.level ?? "info", base: { name: "postern" } };
  return destination ? pino(settings, destination) : pino(settings);
}

export type { Logger };
