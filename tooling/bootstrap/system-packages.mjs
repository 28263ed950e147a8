// The Debian packages `npm test` needs (tooling/ci/debian-packages.txt: the servers and tools the
// interop tests drive — swaks, Dovecot, Redis, PostgreSQL, python3-dkim …). Checked before anything
// runs: installed with apt-get when we are root on Debian (as the toolchain is fetched when
// missing), otherwise `npm test` stops with one line naming what to install. Standard library only.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Thrown to stop the bootstrap with one line and exit 1. */
export class BootstrapStop extends Error {}

export function listedPackages(repoRoot) {
  return readFileSync(join(repoRoot, "tooling/ci/debian-packages.txt"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

function hasCommand(name) {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/** The listed packages dpkg does not report as installed. */
function missingPackages(packages) {
  // One call for all: "<name> <status>" per known package ("ii " = installed); unknown ones print
  // nothing on stdout, so they count as missing.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} format, not JavaScript's
  const result = spawnSync("dpkg-query", ["-W", "-f=${Package} ${db:Status-Abbrev}\n", ...packages], {
    encoding: "utf8",
  });
  const installed = new Set(
    (result.stdout ?? "")
      .split("\n")
      .filter((line) => /^\S+ ii/.test(line))
      .map((line) => line.split(" ", 1)[0].replace(/:.*$/, "")),
  );
  return packages.filter((name) => !installed.has(name));
}

/**
 * Makes sure the listed Debian packages are installed; `log` reports what it does. Throws
 * BootstrapStop with the one line to print when it cannot.
 */
export function ensureSystemPackages(repoRoot, log) {
  const packages = listedPackages(repoRoot);
  if (!hasCommand("dpkg-query")) {
    throw new BootstrapStop(
      `npm test drives Debian packages (tooling/ci/debian-packages.txt: ${packages.join(" ")}), and this machine has no dpkg; run it on Debian or Ubuntu`,
    );
  }
  let missing = missingPackages(packages);
  if (missing.length === 0) return;
  const root = process.getuid?.() === 0;
  if (!root || !hasCommand("apt-get")) {
    throw new BootstrapStop(
      `npm test needs these Debian packages: ${missing.join(" ")}; install them with: sudo apt-get install --no-install-recommends ${missing.join(" ")}`,
    );
  }
  log(`installing the Debian packages the tests drive: ${missing.join(" ")}`);
  const installed = spawnSync("bash", [join(repoRoot, "tooling/ci/debian-tools.sh")], { stdio: "inherit" });
  missing = missingPackages(packages);
  if (installed.status !== 0 || missing.length > 0) {
    throw new BootstrapStop(
      `apt-get could not install ${missing.join(" ") || "the packages"} (tooling/ci/debian-tools.sh exited ${installed.status}); install them by hand and run npm test again`,
    );
  }
}
