// Plugins share results through typed keys rather than strings: the plugin that writes a result
// exports its key, and a reader gets the type with it. No global declaration merging, so a result
// is only "known" where the key was imported.

declare const valueType: unique symbol;

export interface ResultKey<T> {
  readonly name: string;
  readonly id: symbol;
  /** Carries T for the type checker only. */
  readonly [valueType]?: T;
}

export function resultKey<T>(name: string): ResultKey<T> {
  return { name, id: Symbol(name) };
}

/** A typed map from result keys to values, one per session and one per transaction. */
export class Results {
  readonly #values = new Map<symbol, { name: string; value: unknown }>();

  get<T>(key: ResultKey<T>): T | undefined {
    return this.#values.get(key.id)?.value as T | undefined;
  }

  set<T>(key: ResultKey<T>, value: NoInfer<T>): void {
    this.#values.set(key.id, { name: key.name, value });
  }

  has(key: ResultKey<unknown>): boolean {
    return this.#values.has(key.id);
  }

  delete(key: ResultKey<unknown>): boolean {
    return this.#values.delete(key.id);
  }

  /** Name → value, for logs. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const { name, value } of this.#values.values()) out[name] = value;
    return out;
  }
}
