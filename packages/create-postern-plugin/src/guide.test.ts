import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { HookName } from "@postern/core";
import { describe, expect, it } from "vitest";
import { guidePath, packageDir, renderGuide, snippet, snippetMarkers } from "./guide-sync.ts";

const guide = readFileSync(guidePath, "utf8");

describe("GUIDE.md", () => {
  it("shows the files under src/guide/ exactly (run `pnpm run guide` after editing them)", () => {
    expect(renderGuide(guide)).toBe(guide);
  });

  it("shows every example and its test", () => {
    expect(snippetMarkers(guide)).toEqual([
      "src/guide/http-recipient-policy.ts",
      "src/guide/return-path.ts",
      "src/guide/content-filter.ts",
      "src/guide/content-filter.test.ts",
      "src/guide/postern.config.ts",
      "src/guide/http-recipient-policy.test.ts",
      "src/guide/return-path.test.ts",
      "src/guide/spam-score.ts",
      "src/guide/spam-score.test.ts#reader",
      "src/guide/ordering.test.ts#ordering",
      "src/guide/last-outcome.ts",
    ]);
    for (const marker of snippetMarkers(guide)) {
      const [path] = marker.split("#");
      if (path!.endsWith(".test.ts")) continue;
      // Every example file is exercised by a test file of its own.
      const test = path!.replace(/\.ts$/, ".test.ts");
      expect(() => readFileSync(join(packageDir, test)), test).not.toThrow();
    }
  });

  it("has a row in the hook table for every hook of the plugin contract", () => {
    // A Record over HookName: a hook added to core fails to compile here until it is listed.
    const rows: Record<HookName, string> = {
      connect: "accept",
      secure: "accept",
      helo: "accept",
      auth: "reject 535 5.7.8",
      mailFrom: "accept",
      rcptTo: "**reject 550 5.7.1**",
      data: "accept",
      queue: "**defer 451 4.3.0**",
      close: "—",
    };
    // The table's rows as cells (the formatter pads columns, so cells are trimmed).
    const table = guide
      .split("\n")
      .map((line) =>
        line
          .split("|")
          .slice(1, -1)
          .map((cell) => cell.trim()),
      )
      .filter((cells) => cells.length === 5 && /^`\w+`$/.test(cells[0]!));
    expect(table.map((cells) => cells[0])).toEqual(Object.keys(rows).map((hook) => `\`${hook}\``));
    for (const cells of table) expect(cells[4]!.startsWith(rows[cells[0]!.slice(1, -1) as HookName])).toBe(true);
  });
});

describe("snippet blocks", () => {
  it("replaces stale and empty blocks, and only them", () => {
    const files: Record<string, string> = { "a.ts": "const a = 1;\n", "b.ts": "const b = 2;\n" };
    const markdown = [
      "intro",
      "<!-- snippet: a.ts -->",
      "```ts",
      "```",
      "between",
      "<!-- snippet: b.ts -->",
      "```ts",
      "const b = 0; // stale",
      "```",
      "end",
    ].join("\n");
    expect(renderGuide(markdown, (path) => files[path]!)).toBe(
      [
        "intro",
        "<!-- snippet: a.ts -->",
        "```ts",
        "const a = 1;",
        "```",
        "between",
        "<!-- snippet: b.ts -->",
        "```ts",
        "const b = 2;",
        "```",
        "end",
      ].join("\n"),
    );
  });

  it("cuts a region out and dedents it, and names a missing one", () => {
    const source = "a\n  // #region part\n    x\n      y\n  // #endregion part\nb\n";
    expect(snippet(source, "part")).toBe("x\n  y");
    expect(() => snippet(source, "other", "file.ts")).toThrow('file.ts has no "// #region other"');
  });
});
