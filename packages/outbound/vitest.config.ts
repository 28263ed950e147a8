import { postern } from "../../tooling/vitest.preset.ts";

// The preset lists "import" among the resolve conditions, and vitest hands them to Node as
// --conditions, so a CommonJS package's require() picks the ESM build of a dual package (pg
// requiring pg-pool gets a module namespace: "Class extends value [object Module]"). Node adds
// "import"/"require" by itself, so dropping it here is safe. (Reported for the shared preset.)
const config = postern();
const withoutImport = (conditions: string[] | undefined) => conditions?.filter((condition) => condition !== "import");
if (config.resolve) config.resolve.conditions = withoutImport(config.resolve.conditions);
if (config.ssr?.resolve) config.ssr.resolve.conditions = withoutImport(config.ssr.resolve.conditions);

export default config;
