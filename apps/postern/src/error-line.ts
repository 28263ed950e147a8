// How a failure reaches the operator: one line, no stack trace, for every error we expect (bad
// config, a port in use, an unreadable TLS file). Only a bug — an error that isn't a PosternError —
// brings its stack along, because then the stack is what someone needs.
import { PosternError } from "@postern/core";

export function errorLine(error: unknown): string {
  if (error instanceof PosternError) return error.message.replace(/\s*\n\s*/g, " ");
  if (error instanceof Error) return `unexpected error: ${error.stack ?? error.message}`;
  return `unexpected error: ${String(error)}`;
}
