// `postern address test <address>…`: how the @postern/recipients plugin of the config resolves an
// address — the mailboxes and forwards it stands for, with routes, subaddress details and the SRS
// sender a forward gets, the list members dropped on the way, or the refusal and why — asking the
// plugin's own directory (its alias files, lookups and SRS secrets), like Postfix's `postmap -q`.
import type { AddressExplanation } from "@postern/recipients";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { importOptional } from "../optional-package.ts";
import { formatTable } from "../text-table.ts";
import { UsageError } from "../usage-error.ts";

const options = {
  ...configOptions,
  from: { type: "string" },
  json: { type: "boolean" },
} as const;

/** The sender a forward's SRS form is shown for when --from is not given. */
const exampleSender = "user@sender.example";

function describe(explanation: AddressExplanation, from: string): string[] {
  switch (explanation.kind) {
    case "local": {
      const lines = [`${explanation.address}: accepted, ${explanation.targets.length} recipient(s)`];
      const rows = explanation.targets.map((target) => [
        `  ${target.address}`,
        target.route,
        target.kind === "mailbox"
          ? `mailbox${target.detail === undefined ? "" : ` (detail "${target.detail}")`}`
          : `forward, sender ${target.sender ?? (from === "" ? "<> (the null sender stays null)" : `<${from}> (no SRS configured)`)}`,
        target.via.length > 1 ? `via ${target.via.join(" → ")}` : "",
      ]);
      lines.push(formatTable(rows));
      for (const dropped of explanation.dropped) {
        lines.push(`  dropped ${dropped.address} (${dropped.reason}, via ${dropped.via.join(" → ")})`);
      }
      return lines;
    }
    case "refused":
      return [
        `${explanation.address}: refused at RCPT: ${explanation.reply}`,
        ...(explanation.cause ? [`  cause: ${explanation.cause}`] : []),
      ];
    case "remote": {
      const who = [
        ...(explanation.relay.authenticated ? ["authenticated sessions"] : []),
        ...(explanation.relay.networks.length > 0 ? [`clients in ${explanation.relay.networks.join(", ")}`] : []),
      ];
      return [
        `${explanation.address}: ${explanation.domain} is not a local domain: relayed (route relay) for ${
          who.length > 0 ? who.join(" and ") : "nobody"
        }; anyone else gets 550 5.7.1`,
      ];
    }
  }
}

export const address: Command = {
  name: "address",
  summary: "show how @postern/recipients resolves an address (aliases, lists, lookups, forwards and SRS)",
  usage: `Usage: postern address test <address>... [--from <sender>] [--json] [-c <file>]

Resolves each address the way the @postern/recipients plugin of the config does at RCPT TO — its
alias files and maps, its PostgreSQL, LDAP or Dovecot lookups, its catch-alls and SRS — and shows
what it stands for: each mailbox and forward with its route, the subaddress detail a store can
file by, the envelope sender a forward is sent with (its SRS form), the list members dropped on
the way; or the RCPT TO refusal (550 5.1.1 unknown, 451 4.3.0 when a lookup failed, 550 5.4.6 an
alias loop …) with its cause. Exits 0 when every address is accepted, 1 otherwise.

Options:
  --from <sender>       the MAIL FROM a forward's SRS sender is shown for (default ${exampleSender};
                        "" for the null sender)
  --json                one JSON object per address, on its own line
${configOptionsHelp}
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [action, ...addresses] = positionals;
    if (action !== "test") throw new UsageError('expected "test"');
    if (addresses.length === 0) throw new UsageError("expected one or more addresses");
    const from = values.from ?? exampleSender;

    const { config, source } = await loadConfig(configRequestFrom(values));
    const { addressTestFor } = await importOptional<typeof import("@postern/recipients")>(
      "@postern/recipients",
      "postern address",
    );
    let test: Awaited<ReturnType<typeof addressTestFor>>;
    for (const plugin of config.plugins) {
      test = await addressTestFor(plugin);
      if (test) break;
    }
    if (!test) {
      process.stderr.write(`postern address: ${source} has no @postern/recipients plugin\n`);
      return 1;
    }
    try {
      if (!values.json) {
        process.stdout.write(`directory (${source}): ${test.resolvers.join(" → ")}\n`);
      }
      let refused = 0;
      for (const text of addresses) {
        const explanation = await test.explain(text, { from });
        if (explanation.kind !== "local") refused++;
        const output = values.json ? [JSON.stringify(explanation)] : describe(explanation, from);
        process.stdout.write(`${output.join("\n")}\n`);
      }
      return refused > 0 ? 1 : 0;
    } finally {
      await test.close();
    }
  },
};
