// Identifier quoting for the schema name (already restricted to [a-z0-9_] by the options).
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
