// The signing keys of @postern/dkim, read as the plugin's setup will read them: a missing or broken
// key file otherwise stops `start`, and `check` should say so first.
import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Plugin } from "@postern/core";
import { originOf } from "../plugin-options.ts";
import { error, type Finding } from "./finding.ts";

interface KeyEntry {
  keyFile?: unknown;
  selector?: unknown;
  domain?: unknown;
}

export async function checkDkimKeys(plugins: readonly Plugin[], directory: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const [index, plugin] of plugins.entries()) {
    const origin = originOf(plugin);
    if (origin?.package !== "@postern/dkim") continue;
    const keys = (origin.options as { sign?: { keys?: KeyEntry[] } } | undefined)?.sign?.keys ?? [];
    for (const [keyIndex, entry] of keys.entries()) {
      if (typeof entry?.keyFile !== "string") continue;
      const key = `plugins.${index}.options.sign.keys.${keyIndex}.keyFile`;
      let pem: string;
      try {
        pem = await readFile(resolve(directory, entry.keyFile), "utf8");
      } catch (cause) {
        findings.push(error(key, `cannot read ${entry.keyFile} (${(cause as NodeJS.ErrnoException).code ?? cause})`));
        continue;
      }
      try {
        const type = createPrivateKey(pem).asymmetricKeyType;
        if (type !== "rsa" && type !== "ed25519") {
          findings.push(error(key, `${entry.keyFile} is a ${type} key; DKIM signs with RSA or Ed25519`));
        }
      } catch {
        findings.push(error(key, `${entry.keyFile} is not a PEM private key (make one with \`postern dkim keygen\`)`));
      }
    }
  }
  return findings;
}
