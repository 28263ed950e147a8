// The options of maildir(), validated when the config loads.
import { z } from "zod";

export interface MaildirOptions {
  /** Directory holding every mailbox, e.g. "./data/maildir" (relative to the working directory). */
  root: string;
  /** Path of a recipient's Maildir under root; placeholders {domain} {user} {address}. Default "{domain}/{user}". */
  layout?: string;
  /** Route groups this store takes (see @postern/recipients). Default ["local"]. */
  routes?: string[];
  /**
   * Deliver alice+news into the Maildir++ folder ".news" of alice's Maildir (the detail
   * @postern/recipients splits off): "off" (default), "existing" (only into a folder that exists)
   * or "create" (made when missing).
   */
  subaddressFolders?: "off" | "existing" | "create";
}

const placeholder = /\{([^{}]*)\}/g;
const knownPlaceholders = new Set(["domain", "user", "address"]);

const layoutSchema = z
  .string()
  .default("{domain}/{user}")
  .superRefine((layout, context) => {
    const problem = layoutProblem(layout);
    if (problem)
      context.addIssue({ code: "custom", message: `expected a relative path such as "{domain}/{user}": ${problem}` });
  });

function layoutProblem(layout: string): string | undefined {
  if (layout === "") return "it is empty";
  if (layout.startsWith("/")) return "it must be relative to root";
  if (layout.includes("\0")) return "it contains NUL";
  for (const [, name] of layout.matchAll(placeholder)) {
    if (!knownPlaceholders.has(name!)) return `unknown placeholder {${name}}`;
  }
  // Segments are checked before substitution; substituted values are checked on every delivery.
  for (const segment of layout.split("/")) {
    if (segment === "" || segment === "." || segment === "..") return `"${segment}" is not a usable path segment`;
    if (segment.startsWith(".")) return `segment "${segment}" starts with a dot`;
  }
  return undefined;
}

export const maildirOptionsSchema = z.strictObject({
  root: z.string({ error: 'expected the Maildir root directory, e.g. "./data/maildir"' }).min(1, {
    error: 'expected the Maildir root directory, e.g. "./data/maildir"',
  }),
  layout: layoutSchema,
  routes: z
    .array(z.string().min(1))
    .min(1, { error: 'expected at least one route, e.g. ["local"]' })
    .default(["local"]),
  subaddressFolders: z
    .enum(["off", "existing", "create"], { error: 'expected "off", "existing" or "create"' })
    .default("off"),
});

export type ResolvedMaildirOptions = z.output<typeof maildirOptionsSchema>;
