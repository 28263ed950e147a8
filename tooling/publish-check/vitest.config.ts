import { postern } from "../vitest.preset.ts";

// Packing, npm installs from the registry and a scaffolded package's own test run take minutes on
// a busy 2-core machine; the pack step runs once for every test file (globalSetup).
export default postern({
  test: {
    globalSetup: ["src/global-setup.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
