// The `store` option of a daily-report plugin, validated when the config loads: PostgreSQL (the
// URL defaults to DATABASE_URL), a directory of day files, or a store object of the operator's.
import { z } from "zod";
import type { PgCounterStoreOptions } from "./pg-counter-store.ts";

export type CounterStoreOption<Store> =
  | { type: "postgres"; connectionString?: string; schema?: string; maxConnections?: number }
  | { type: "file"; dir?: string }
  | { type: "custom"; store: Store };

const text = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });

/** The schema of the option; `storeName` names the custom store's type in its error ("a TlsRptStore object"). */
export function counterStoreSchema<Store extends object>(options: { defaultDir: string; storeName: string }) {
  return z.discriminatedUnion(
    "type",
    [
      z.strictObject({
        type: z.literal("postgres"),
        connectionString: text("a PostgreSQL URL such as postgres://user@host/db (or set DATABASE_URL)").optional(),
        schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'expected a lower-case SQL identifier such as "postern"' })
          .default("postern"),
        maxConnections: z.number().int().min(1).max(100).default(4),
      }),
      z.strictObject({ type: z.literal("file"), dir: text("a directory").default(options.defaultDir) }),
      z.strictObject({
        type: z.literal("custom"),
        store: z.custom<Store>(
          (value) =>
            typeof value === "object" && value !== null && typeof (value as { add?: unknown }).add === "function",
          { error: `expected a ${options.storeName} object` },
        ),
      }),
    ],
    { error: 'expected a store with type "postgres", "file" or "custom"' },
  );
}

/** The store an option names (files under `defaultDir` when none is given). */
export function createCounterStore<Store>(
  option: CounterStoreOption<Store> | undefined,
  make: {
    readonly defaultDir: string;
    readonly file: (dir: string) => Store;
    readonly postgres: (options: PgCounterStoreOptions) => Store;
    /** The error for a PostgreSQL store with no URL and no DATABASE_URL. */
    readonly missingUrl: () => Error;
  },
): Store {
  const store = option ?? { type: "file" as const, dir: make.defaultDir };
  switch (store.type) {
    case "postgres": {
      const connectionString = store.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString) throw make.missingUrl();
      return make.postgres({ connectionString, schema: store.schema, maxConnections: store.maxConnections });
    }
    case "file":
      return make.file(store.dir ?? make.defaultDir);
    case "custom":
      return store.store;
  }
}
