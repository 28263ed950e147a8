// How the server's own module loading treats a site's files (postern.config.ts, local plugin
// modules). Installed once, before any config is imported, with node:module's synchronous hooks:
//
// - `@postern/core` always resolves to the copy this `postern` runs on, wherever it is imported
//   from: result keys are symbols and verdicts are checked by identity, so a plugin or config that
//   got a second copy would silently stop matching. This is also how a local plugin module in a bare
//   folder (no node_modules at all) under a global `postern` finds core.
// - A `@postern/*` package a site file imports but the site did not install falls back to the ones
//   `postern` ships with (@postern/recipients and @postern/store-maildir, for the embedded default).
// - A `.ts` file of the site is ES module TypeScript whatever its package.json says about "type"
//   (as vite.config.ts is): `npm init -y` writes "type": "commonjs", which would make Node refuse
//   the config's `import` statements.
// - The default export of a `@postern/*` plugin package imported by a site file is wrapped so the
//   options it is called with are recorded (plugin-options.ts), for preflight checks and hints.
//
// The site's files are those under the folder of the config file being loaded, outside node_modules.
import { registerHooks } from "node:module";
import { sep } from "node:path";
import { fileURLToPath } from "node:url";
import { pluginOptionsRecorderUrl } from "./plugin-options.ts";

/** The wrapper of a plugin package is the real module's URL with this query naming the package. */
const wrapperParameter = "postern-plugin";
/** Packages that are not plugin factories and stay as they are. */
const notPlugins = new Set(["@postern/core", "@postern/testing"]);

const appUrl = import.meta.url;
let installed = false;
let siteRoot: string | undefined;

/** Says where the site's files are; called before a config file is imported. */
export function setSiteRoot(directory: string): void {
  siteRoot = directory.endsWith(sep) ? directory : `${directory}${sep}`;
}

function isSiteFile(url: string | undefined): boolean {
  if (!siteRoot || !url?.startsWith("file:") || url.includes("/node_modules/")) return false;
  return fileURLToPath(url).startsWith(siteRoot);
}

/** "@postern/spf" for "@postern/spf" and "@postern/spf/sub"; undefined for anything else. */
function posternPackage(specifier: string): string | undefined {
  return /^(@postern\/[^/]+)(\/.*)?$/.exec(specifier)?.[1];
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND";
}

function wrapperSource(realUrl: string, name: string): string {
  const real = JSON.stringify(realUrl);
  return [
    `import factory from ${real};`,
    `import { recordPluginOptions } from ${JSON.stringify(pluginOptionsRecorderUrl)};`,
    `export * from ${real};`,
    "export default typeof factory !== 'function' ? factory : function (options, ...rest) {",
    `  return recordPluginOptions(${JSON.stringify(name)}, options, () => factory(options, ...rest));`,
    "};",
  ].join("\n");
}

export function installModuleHooks(): void {
  if (installed) return;
  installed = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const name = posternPackage(specifier);
      if (name === "@postern/core") return nextResolve(specifier, { ...context, parentURL: appUrl });
      if (!name || !isSiteFile(context.parentURL)) return nextResolve(specifier, context);
      let resolved: ReturnType<typeof nextResolve>;
      try {
        resolved = nextResolve(specifier, context);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        resolved = nextResolve(specifier, { ...context, parentURL: appUrl });
      }
      if (specifier !== name || notPlugins.has(name)) return resolved;
      const wrapper = new URL(resolved.url);
      wrapper.searchParams.set(wrapperParameter, name);
      return { ...resolved, url: wrapper.href, shortCircuit: true };
    },
    load(url, context, nextLoad) {
      const wrapper = url.startsWith("file:") && url.includes(`${wrapperParameter}=`) ? new URL(url) : undefined;
      const wrapped = wrapper?.searchParams.get(wrapperParameter);
      if (wrapper && wrapped) {
        wrapper.searchParams.delete(wrapperParameter);
        return { format: "module", source: wrapperSource(wrapper.href, wrapped), shortCircuit: true };
      }
      const loaded = nextLoad(url, context);
      if (loaded.format === "commonjs-typescript" && isSiteFile(url) && url.endsWith(".ts")) {
        return { ...loaded, format: "module-typescript" };
      }
      return loaded;
    },
  });
}
