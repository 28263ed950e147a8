// The versions a generated plugin depends on. A test compares them with the workspace, so a
// release of @postern/core or a toolchain upgrade here cannot leave the scaffolder behind.
export const templateVersions = {
  "@postern/core": "^0.1.0",
  "@postern/testing": "^0.1.0",
  zod: "^4.6.7",
  vitest: "^4.1.12",
  typescript: "~5.9.3",
  "@types/node": "^24.10.0",
} as const;

// The Node versions written into `engines` are scaffold.ts's nodeEngines, shared with create-postern.
export { nodeEngines } from "./scaffold.ts";
