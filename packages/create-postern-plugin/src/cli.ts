#!/usr/bin/env node
// `npm create postern-plugin@latest <folder> [-- --name <package-name>]`, or
// `pnpm create postern-plugin <folder>`: writes the plugin package and says what to run next.
import { createPlugin, PluginNameError, TargetNotEmptyError } from "./index.ts";
import { parseCommandLine, runCommand, shownPath } from "./scaffold.ts";

const usage = `Usage: create-postern-plugin <folder> [--name <package-name>]

Writes a Postern plugin package into <folder> (new or empty): a factory with validated options,
a hook, a test over real SMTP, a README, and build and publish settings.

  --name <package-name>   npm package name (default: the folder's name), e.g. @acme/postern-greylist
  -h, --help              show this help`;

const argsConfig = {
  options: { name: { type: "string" }, help: { type: "boolean", short: "h" } },
  allowPositionals: true,
} as const;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv, argsConfig);
  if (parsed instanceof Error) {
    process.stderr.write(`${parsed.message}\n\n${usage}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [folder, ...extra] = parsed.positionals;
  if (!folder || extra.length > 0) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  try {
    const created = await createPlugin({
      directory: folder,
      ...(parsed.values.name ? { name: parsed.values.name } : {}),
    });
    const shown = shownPath(created.directory);
    process.stdout.write(
      [
        `Created ${created.names.packageName} in ${shown}:`,
        ...created.files.map((file) => `  ${file}`),
        "",
        "Next:",
        `  cd ${shown}`,
        "  npm install",
        "  npm test",
        "",
      ].join("\n"),
    );
    return 0;
  } catch (error) {
    if (error instanceof PluginNameError || error instanceof TargetNotEmptyError) {
      process.stderr.write(`create-postern-plugin: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

runCommand("create-postern-plugin", main);
