import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    // Real SMTP servers on loopback; generous on a busy CI machine.
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
