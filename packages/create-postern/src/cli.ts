// `npm create postern@latest <folder> [-- --domain example.org]`, or `pnpm create postern
// <folder>`: writes the site and says what to run next.
import { parseCommandLine, runCommand, shownPath } from "create-postern-plugin/scaffold";
import { createSite, SiteOptionError, TargetNotEmptyError } from "./index.ts";

const usage = `Usage: create-postern <folder> [--domain <domain>] [--hostname <host>] [--name <package-name>]

Writes a Postern mail server site into <folder> (new or empty): package.json, a typed
postern.config.ts, a test that delivers a message through it, a systemd unit and a README.

  --domain <domain>       the mail domain to accept mail for (default: example.com)
  --hostname <host>       the server's host name, its MX target (default: mx.<domain>)
  --name <package-name>   the site's npm package name (default: the folder's name)
  -h, --help              show this help`;

const argsConfig = {
  options: {
    domain: { type: "string" },
    hostname: { type: "string" },
    name: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: true,
} as const;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv, argsConfig);
  if (parsed instanceof Error) {
    process.stderr.write(`create-postern: ${parsed.message.split(". ", 1)[0]}\n\n${usage}\n`);
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
    const { domain, hostname, name } = parsed.values;
    const created = await createSite({
      directory: folder,
      ...(name ? { name } : {}),
      ...(domain ? { domain } : {}),
      ...(hostname ? { hostname } : {}),
    });
    const shown = shownPath(created.directory);
    process.stdout.write(
      [
        `Created ${created.names.name} in ${shown}: mail for ${created.names.domain}, served as ${created.names.hostname}`,
        ...created.files.map((file) => `  ${file}`),
        "",
        "Next:",
        `  cd ${shown}`,
        "  npm install",
        "  npm test     # checks the config, then delivers a message through the server",
        "  npm start    # serves SMTP on 127.0.0.1:2525",
        "",
      ].join("\n"),
    );
    return 0;
  } catch (error) {
    if (error instanceof SiteOptionError || error instanceof TargetNotEmptyError) {
      process.stderr.write(`create-postern: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

runCommand("create-postern", main);
