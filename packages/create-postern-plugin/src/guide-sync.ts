// GUIDE.md's code blocks are copies of files under src/guide/, whose tests run with the rest: a
// block follows a marker naming its file (and optionally a `// #region name` inside it), e.g.
//
//   <!-- snippet: src/guide/return-path.ts -->
//   <!-- snippet: src/guide/ordering.test.ts#ordering -->
//
// guide.test.ts fails when a block differs from its file; `pnpm run guide` rewrites the blocks.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const packageDir: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const guidePath: string = join(packageDir, "GUIDE.md");

// An empty block ("```ts\n```") must not reach into the next one: the body is optional and lazy.
const block = /<!-- snippet: ([^\s#]+)(?:#([\w-]+))? -->\n```(\w+)\n(?:[\s\S]*?\n)??```/g;

/** The text of `region` in `source` (dedented), or the whole source. */
export function snippet(source: string, region?: string, path = "source"): string {
  if (!region) return source.trimEnd();
  const lines = source.split("\n");
  const start = lines.findIndex((line) => line.trim() === `// #region ${region}`);
  const end = lines.findIndex((line, index) => index > start && line.trim() === `// #endregion ${region}`);
  if (start === -1 || end === -1) throw new Error(`${path} has no "// #region ${region}" … "// #endregion ${region}"`);
  const body = lines.slice(start + 1, end);
  const indent = Math.min(...body.filter((line) => line.trim()).map((line) => /^ */.exec(line)![0].length));
  return body.map((line) => line.slice(indent)).join("\n");
}

/** The guide with every snippet block replaced by the current text of its file. */
export function renderGuide(markdown: string, read: (path: string) => string = readPackageFile): string {
  return markdown.replace(block, (_match, path: string, region: string | undefined, language: string) => {
    const marker = `<!-- snippet: ${path}${region ? `#${region}` : ""} -->`;
    return `${marker}\n\`\`\`${language}\n${snippet(read(path), region, path)}\n\`\`\``;
  });
}

/** The snippet markers of a guide, as "path" or "path#region". */
export function snippetMarkers(markdown: string): string[] {
  return [...markdown.matchAll(block)].map((match) => (match[2] ? `${match[1]}#${match[2]}` : match[1]!));
}

function readPackageFile(path: string): string {
  return readFileSync(join(packageDir, path), "utf8");
}

// `node src/guide-sync.ts --write` (pnpm run guide) rewrites GUIDE.md; without --write it only checks.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const current = readFileSync(guidePath, "utf8");
  const rendered = renderGuide(current);
  if (process.argv.includes("--write")) {
    writeFileSync(guidePath, rendered);
    console.log(rendered === current ? "GUIDE.md is up to date" : "GUIDE.md updated");
  } else if (rendered !== current) {
    console.error("GUIDE.md differs from the files under src/guide/; run `pnpm run guide`");
    process.exitCode = 1;
  }
}
