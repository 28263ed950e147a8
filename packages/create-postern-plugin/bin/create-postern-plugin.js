#!/usr/bin/env node
// The `create-postern-plugin` executable (what `npm create postern-plugin` runs). It checks the
// Node version before loading anything else: the plugin it writes is built and tested against
// Postern, which needs the Node named in engines, and saying so in one line beats a failure later.
// Kept to syntax and APIs every Node since 14 understands. (A file in the repository, not in
// dist/, so that installing the workspace before a build links the bin without a warning.)
import { readFileSync } from "node:fs";

const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const needed = /(\d+)\.(\d+)\.(\d+)/.exec(manifest.engines.node).slice(1).map(Number);
const running = process.versions.node.split(".").map(Number);
const older =
  running[0] !== needed[0]
    ? running[0] < needed[0]
    : running[1] !== needed[1]
      ? running[1] < needed[1]
      : running[2] < needed[2];
if (older) {
  process.stderr.write(
    `create-postern-plugin needs Node.js ${needed.join(".")} or later (this is Node.js ${process.versions.node}); install a newer Node, e.g. from https://nodejs.org\n`,
  );
  process.exit(1);
}
await import("#cli");
