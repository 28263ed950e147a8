// pino JSON logs. Every line from a session carries its id; hook lines add plugin, hook, queue ID.
import { type Logger, pino } from "pino";

export interface LogOptions {
  level?: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

export function createLogger(options: LogOptions = {}): Logger {
  return pino({ level: options.level ?? "info", base: { name: "postern" } });
}

export type { Logger };
