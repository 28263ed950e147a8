// Errors are values with a stable code and — when a plugin is involved — the plugin and the hook,
// so a log line or a config error always says who and where. PosternError is the open base every
// package extends: a package names its own codes (e.g. "MAILDIR_NOT_WRITABLE") in its own error
// class, and anything that handles errors reads `code`, `plugin` and `hook` without knowing them.

/** The codes core itself raises. */
export type CoreErrorCode =
  | "POSTERN_CONFIG_INVALID"
  | "POSTERN_PLUGIN_INVALID"
  | "POSTERN_HOOK_FAILED"
  | "POSTERN_HOOK_TIMEOUT"
  | "POSTERN_HOOK_BAD_VERDICT"
  | "POSTERN_SETUP_FAILED"
  | "POSTERN_LISTEN_FAILED"
  | "POSTERN_TLS_FILES"
  | "POSTERN_SUBMIT_REFUSED"
  | "POSTERN_FILE_LOCKED"
  | "POSTERN_RELOAD_REFUSED";

/** Core's codes, or a package's own (upper-case, prefixed with the package's short name). */
export type PosternErrorCode = CoreErrorCode | (string & {});

export interface PosternErrorOptions {
  plugin?: string | undefined;
  hook?: string | undefined;
  cause?: unknown;
}

export class PosternError extends Error {
  readonly code: PosternErrorCode;
  readonly plugin: string | undefined;
  readonly hook: string | undefined;

  constructor(code: PosternErrorCode, message: string, options: PosternErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.plugin = options.plugin;
    this.hook = options.hook;
  }
}

/** True for any PosternError (or subclass) — optionally with one of the given codes. */
export function isPosternError(value: unknown, ...codes: PosternErrorCode[]): value is PosternError {
  return value instanceof PosternError && (codes.length === 0 || codes.includes(value.code));
}

/**
 * A configuration problem, reported as one line: the file (when there is one), the key and what
 * was expected, e.g. `postern.yaml: listeners.0.port: expected a port number 1–65535, got "x"`.
 */
export class ConfigError extends PosternError {
  readonly key: string;
  readonly expected: string;
  readonly file: string | undefined;

  constructor(key: string, expected: string, options: { file?: string; plugin?: string; cause?: unknown } = {}) {
    const where = [options.file, key].filter(Boolean).join(": ");
    super("POSTERN_CONFIG_INVALID", `${where}: ${expected}`, options);
    this.key = key;
    this.expected = expected;
    this.file = options.file;
  }

  /**
   * The same error, located in a file and under a parent key (e.g. a plugin's `plugins.2.options`).
   * A key that starts with the plugin's name (as parseOptions writes it) loses that prefix there.
   */
  inFile(file: string, parentKey?: string): ConfigError {
    let key = this.key;
    if (parentKey && this.plugin) {
      if (key === this.plugin || key === "(options)") key = "";
      else if (key.startsWith(`${this.plugin}.`)) key = key.slice(this.plugin.length + 1);
    }
    const located = [parentKey, key].filter(Boolean).join(".") || "(options)";
    return new ConfigError(located, this.expected, {
      file,
      cause: this,
      ...(this.plugin ? { plugin: this.plugin } : {}),
    });
  }
}
