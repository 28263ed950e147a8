// Several config problems reported together, each one line: `postern check` and `start` name
// every broken key of a file in one run instead of one per run.
import { type ConfigError, PosternError } from "@postern/core";

export class ConfigErrors extends PosternError {
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    super("POSTERN_CONFIG_INVALID", errors.map((error) => error.message).join("\n"), { cause: errors[0] });
    this.name = "ConfigErrors";
    this.errors = errors;
  }
}
