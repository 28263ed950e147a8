// The names a generated plugin carries: its npm package name (checked with npm's own rules) and
// the identifiers of its factory, options type and result key, derived from that name.
import { packageNameProblem } from "./scaffold.ts";

export class PluginNameError extends Error {
  readonly code = "CREATE_POSTERN_PLUGIN_BAD_NAME";
  constructor(message: string) {
    super(message);
    this.name = "PluginNameError";
  }
}

/** Throws a PluginNameError saying what is wrong when npm would refuse `name` for a new package. */
export function checkPackageName(name: string): void {
  const problem = packageNameProblem(name);
  if (problem !== undefined) throw new PluginNameError(problem);
}

// Words that cannot name a function declaration in a module (strict mode).
const reserved = new Set(
  (
    "await break case catch class const continue debugger default delete do else enum export extends false " +
    "finally for function if implements import in instanceof interface let new null package private protected " +
    "public return static super switch this throw true try typeof var void while with yield arguments eval"
  ).split(" "),
);

/**
 * The factory's name: the package name without its scope and without a "postern-plugin-" /
 * "postern-" prefix, in camelCase ("@acme/postern-plugin-greylist" → "greylist").
 */
export function factoryName(packageName: string): string {
  const bare = packageName.replace(/^@[^/]+\//, "").replace(/^postern-(plugin-)?/, "") || "plugin";
  const words = bare.split(/[^a-zA-Z0-9]+/).filter(Boolean);
  const camel = words
    .map((word, index) => (index === 0 ? word.toLowerCase() : word[0]!.toUpperCase() + word.slice(1).toLowerCase()))
    .join("");
  if (camel === "" || /^[0-9]/.test(camel)) return `plugin${camel[0]?.toUpperCase() ?? ""}${camel.slice(1)}`;
  return reserved.has(camel) ? `${camel}Plugin` : camel;
}

/** The names substituted into the template. */
export interface PluginNames {
  /** The npm package name, also the plugin's `name` and the prefix of its option errors. */
  readonly packageName: string;
  /** The default export, e.g. "greylist". */
  readonly factory: string;
  /** The same in PascalCase, for types: "Greylist" → GreylistOptions, GreylistResult. */
  readonly typePrefix: string;
}

export function pluginNames(packageName: string): PluginNames {
  checkPackageName(packageName);
  const factory = factoryName(packageName);
  return { packageName, factory, typePrefix: factory[0]!.toUpperCase() + factory.slice(1) };
}
