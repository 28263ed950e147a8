#!/usr/bin/env node
// The `postern` command: finds the subcommand, answers --help for it, runs it and turns what it
// throws into the exit code — 2 for a command line we can't use, 1 for anything else (with one
// line on stderr), and whatever the command returned otherwise.
// First: sizes libuv's thread pool for `postern start` before any other module runs (see the file).
import "./thread-pool.ts";
import { readFileSync } from "node:fs";
import type { Command } from "./command.ts";
import { commands } from "./commands/index.ts";
import { errorLines } from "./error-line.ts";
import { UsageError } from "./usage-error.ts";

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return manifest.version;
}

function overview(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  return `Usage: postern <command> [options]

Postern, an extensible mail transfer agent.

Commands:
${commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join("\n")}

Run "postern <command> --help" for a command's options.
Options: -h, --help  show this help; -v, --version  show the version`;
}

/** --help anywhere before a "--" asks for the command's help instead of running it. */
function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((arg) => arg === "--help" || arg === "-h");
}

async function runCommand(command: Command, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `postern ${command.name}: ${error.message}\nRun "postern ${command.name} --help" for usage.\n`,
      );
      return 2;
    }
    for (const line of errorLines(error)) process.stderr.write(`${line}\n`);
    return 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(`${overview()}\n`);
    return 2;
  }
  if (first === "--help" || first === "-h" || (first === "help" && rest.length === 0)) {
    process.stdout.write(`${overview()}\n`);
    return 0;
  }
  if (first === "--version" || first === "-v") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const name = first === "help" ? rest[0] : first;
  const command = commands.find((candidate) => candidate.name === name);
  if (!command) {
    process.stderr.write(`postern: unknown command "${name}"\n\n${overview()}\n`);
    return 2;
  }
  return first === "help" ? runCommand(command, ["--help"]) : runCommand(command, rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    for (const line of errorLines(error)) process.stderr.write(`${line}\n`);
    process.exit(1);
  },
);
