// The versions a generated site depends on. A test compares them with the workspace, so a
// release of postern or a plugin, or a toolchain upgrade, cannot leave the scaffolder behind.
export const siteVersions = {
  postern: "^0.1.0",
  "@postern/core": "^0.1.0",
  "@postern/recipients": "^0.1.0",
  "@postern/store-maildir": "^0.1.0",
  "@postern/testing": "^0.1.0",
  typescript: "~5.9.3",
  "@types/node": "^24.10.0",
} as const;

// The Node versions written into the site's `engines`: the same as create-postern-plugin writes.
export { nodeEngines } from "create-postern-plugin/scaffold";
