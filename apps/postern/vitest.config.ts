import { postern } from "../../tooling/vitest.preset.ts";

// Every test here starts the real CLI as a child process (Node strips the TypeScript sources on
// each start), which takes seconds on a loaded 2-core machine: allow a minute per test.
export default postern({ test: { testTimeout: 60_000, hookTimeout: 60_000 } });
