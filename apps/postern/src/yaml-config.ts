// postern.yaml: the same settings as postern.config.ts, said declaratively. Plugins are named by
// package with their options, `{ package: "@postern/spf", options: { ... } }` (or just the package
// name); each package's default export is called with the options, exactly as a TS config would.
// Every entry is tried, so a file with three broken plugin entries reports all three.
import { ConfigError, type Plugin } from "@postern/core";
import { type Document, isNode, LineCounter, parseDocument } from "yaml";
import type { ConfigFileLocation } from "./config-discovery.ts";
import { keyWithinPlugin, pluginErrorInFile, withLine } from "./config-error-location.ts";
import { importPlugin, isRelativeSpecifier, resolvePlugin } from "./plugin-import.ts";
import { recordPluginOptions } from "./plugin-options.ts";

export interface YamlConfig {
  /** The settings with `plugins` turned into plugin objects (those that could be made). */
  input: Record<string, unknown>;
  /** Every plugin entry that could not be made, one error each, located in the file. */
  errors: ConfigError[];
  /** The 1-based line of a dotted key path such as "listeners.0.port", when the file has it. */
  lineOf(key: string): number | undefined;
}

const pluginEntryKeys = new Set(["package", "options"]);

function firstLine(text: string): string {
  return text.split("\n", 1)[0]!.trim();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseYaml(text: string, file: string): { document: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  const error = document.errors[0];
  if (error) {
    const position = error.linePos?.[0];
    // yaml's pretty message is "<what> at line L, column C:" followed by a source excerpt.
    const what = firstLine(error.message).replace(/ at line \d+, column \d+:?$/, "");
    const where = position ? `line ${position.line}, column ${position.col}` : "";
    throw new ConfigError(where, `YAML syntax error: ${what}`, { file });
  }
  return { document, lines };
}

/** The one-line error for a factory that refused to be called without options. */
async function optionsNeeded(
  factory: (options?: unknown) => unknown,
  name: string,
  entryKey: string,
  file: string,
): Promise<ConfigError> {
  // Calling it with an empty mapping makes its schema name the first option it needs.
  let first = "";
  try {
    await factory({});
  } catch (error) {
    if (error instanceof ConfigError) {
      const key = keyWithinPlugin(error);
      first = key ? `, e.g. ${key} (${error.expected.replace(/ \(got nothing\)$/, "")})` : "";
    }
  }
  return new ConfigError(entryKey, `${name} needs options; add "options:" under this entry${first}`, { file });
}

async function instantiatePlugin(
  entry: unknown,
  index: number,
  location: ConfigFileLocation,
  lineOf: (key: string) => number | undefined,
): Promise<Plugin> {
  const file = location.displayName;
  const entryKey = `plugins.${index}`;
  const fail = (key: string, expected: string) => withLine(new ConfigError(key, expected, { file }), lineOf(key));

  const spec = typeof entry === "string" ? { package: entry } : entry;
  if (!isPlainObject(spec)) {
    throw fail(entryKey, 'expected a plugin entry { package: "@postern/<name>", options: { … } }');
  }
  for (const key of Object.keys(spec)) {
    if (!pluginEntryKeys.has(key))
      throw fail(`${entryKey}.${key}`, 'unknown key; a plugin entry has "package" and "options"');
  }
  const name = spec.package;
  if (typeof name !== "string" || name.trim() === "") {
    throw fail(`${entryKey}.package`, 'expected the name of a plugin package, e.g. "@postern/spf"');
  }
  if (spec.options !== undefined && spec.options !== null && !isPlainObject(spec.options)) {
    throw fail(`${entryKey}.options`, `expected a mapping of options for ${name}`);
  }

  let url: string | undefined;
  let module: Record<string, unknown>;
  try {
    url = resolvePlugin(name, location.path);
    if (!url) {
      throw fail(
        `${entryKey}.package`,
        isRelativeSpecifier(name)
          ? `cannot find the module ${name} (relative to the folder of ${file})`
          : `cannot find package "${name}"; install it next to ${file} (npm install ${name}) or check the name`,
      );
    }
    module = await importPlugin(url);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw fail(`${entryKey}.package`, `cannot load "${name}": ${firstLine((error as Error).message)}`);
  }

  const factory = module.default;
  if (typeof factory !== "function") {
    throw fail(`${entryKey}.package`, `"${name}" has no default export to call; expected a Postern plugin package`);
  }
  const optionsKey = `${entryKey}.options`;
  const options = spec.options ?? undefined;
  let plugin: unknown;
  try {
    plugin = await recordPluginOptions(name, options, () => (options === undefined ? factory() : factory(options)));
  } catch (error) {
    if (error instanceof ConfigError) {
      if (options === undefined && keyWithinPlugin(error) === "") {
        throw withLine(await optionsNeeded(factory as () => unknown, name, entryKey, file), lineOf(entryKey));
      }
      const located = pluginErrorInFile(error, file, optionsKey);
      throw withLine(located, lineOf(located.key) ?? lineOf(optionsKey) ?? lineOf(entryKey));
    }
    throw fail(optionsKey, `${name} could not be set up with these options: ${firstLine((error as Error).message)}`);
  }
  return plugin as Plugin;
}

export async function readYamlConfig(text: string, location: ConfigFileLocation): Promise<YamlConfig> {
  const file = location.displayName;
  const { document, lines } = parseYaml(text, file);
  const lineOf = (key: string): number | undefined => {
    const path = key.split(".").map((part) => (/^\d+$/.test(part) ? Number(part) : part));
    const node = document.getIn(path, true);
    const offset = isNode(node) ? node.range?.[0] : undefined;
    return offset === undefined ? undefined : lines.linePos(offset).line;
  };

  const data: unknown = document.toJS() ?? {};
  if (!isPlainObject(data)) {
    throw new ConfigError("", "expected a mapping of settings (hostname, listeners, plugins, …) at the top", { file });
  }
  const { plugins, ...settings } = data;
  const entries = plugins ?? [];
  if (!Array.isArray(entries)) {
    throw withLine(
      new ConfigError("plugins", "expected a list of { package, options } entries", { file }),
      lineOf("plugins"),
    );
  }
  const instances: Plugin[] = [];
  const errors: ConfigError[] = [];
  for (const [index, entry] of entries.entries()) {
    try {
      instances.push(await instantiatePlugin(entry, index, location, lineOf));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      errors.push(error);
    }
  }
  return { input: { ...settings, plugins: instances }, errors, lineOf };
}
