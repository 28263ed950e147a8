import { postern } from "../../tooling/vitest.preset.ts";

// The preset lists "import" among the resolve conditions and vitest hands them to Node as
// --conditions, so a CommonJS require() picks the ESM build of a dual package (pg's
// require("pg-pool") gets a module namespace instead of the Pool class). Node adds
// "import"/"require" by itself, so dropping it is safe. Reported for the shared preset.
const config = postern();
const withoutImport = (conditions: string[] | undefined) => conditions?.filter((condition) => condition !== "import");
if (config.resolve) config.resolve.conditions = withoutImport(config.resolve.conditions);
if (config.ssr?.resolve) config.ssr.resolve.conditions = withoutImport(config.ssr.resolve.conditions);

export default config;
