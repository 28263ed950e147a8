import { postern } from "../vitest.preset.ts";

// Crash tests restart real servers and fuzzing runs bounded property checks: give them time, and
// run the files one after another so their load does not distort each other's timeouts.
export default postern({
  test: {
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
