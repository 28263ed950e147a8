import { postern } from "../../tooling/vitest.preset.ts";

export default postern();
