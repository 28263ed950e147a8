// The shape of one `postern` subcommand. Each lives in its own file under commands/ and is listed
// in commands/index.ts; cli.ts dispatches to it and answers `--help` with its usage text.

export interface Command {
  /** What follows `postern` on the command line, e.g. "start". */
  name: string;
  /** One line for `postern --help`. */
  summary: string;
  /** The full help text printed by `postern <name> --help`, starting with "Usage: postern <name> …". */
  usage: string;
  /** Runs the command with the arguments after its name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}
