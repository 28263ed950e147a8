// How a failure reaches the operator: one line per problem, no stack trace, for every error we
// expect (bad config, a port in use, an unreadable TLS file). Only a bug — an error that isn't a
// PosternError — brings its stack along, because then the stack is what someone needs.
import { PosternError } from "@postern/core";
import { ConfigErrors } from "./config-errors.ts";

export function errorLine(error: unknown): string {
  if (error instanceof PosternError) return error.message.replace(/\s*\n\s*/g, " ");
  if (error instanceof Error) return `unexpected error: ${error.stack ?? error.message}`;
  return `unexpected error: ${String(error)}`;
}

/** The lines to print for `error`: one per config problem when there are several. */
export function errorLines(error: unknown): string[] {
  if (error instanceof ConfigErrors) return error.errors.map(errorLine);
  return [errorLine(error)];
}
