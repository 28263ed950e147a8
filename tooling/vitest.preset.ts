// One vitest setup for every package: tests run on TypeScript sources (the `dev-source` export
// condition), report JSON for the closing totals of `npm test`, and get enough time for real
// servers (SMTP on loopback, Redis, PostgreSQL) on a 2-core machine.
import { defineProject, mergeConfig, type UserWorkspaceConfig } from "vitest/config";

export function postern(overrides: UserWorkspaceConfig = {}): UserWorkspaceConfig {
  const base = defineProject({
    // No "import" here: vitest hands these to Node as --conditions, and "import" would make a
    // CommonJS require() load the ESM build of a dual package (mailauth, pg). Node adds it itself.
    resolve: { conditions: ["dev-source", "node", "default"] },
    ssr: { resolve: { conditions: ["dev-source", "node", "default"], externalConditions: ["dev-source"] } },
    test: {
      include: ["src/**/*.test.ts"],
      testTimeout: 20_000,
      hookTimeout: 20_000,
      reporters: ["default", ["json", { outputFile: "test-results.json" }]],
      typecheck: { enabled: true, include: ["src/**/*.test-d.ts"] },
    },
  });
  return mergeConfig(base, overrides);
}
