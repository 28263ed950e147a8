// The observer channel: typed events for whoever watches (metrics, traces, logs, rate counting)
// without taking part. Event types are keys, like result keys: core exports its own, a package
// exports the ones it emits (`eventKey<DeliveryEvent>("outbound.delivered")`), and `on` knows the
// payload type from the key. An observer cannot change a verdict — it gets the event after the
// fact and its return value is ignored; one that throws (or rejects) is logged and ignored.
import type { Logger } from "pino";

declare const payload: unique symbol;

export interface EventKey<T> {
  readonly name: string;
  /** Type-level only: the payload this key carries. */
  readonly [payload]?: T;
}

export function eventKey<T>(name: string): EventKey<T> {
  return Object.freeze({ name }) as EventKey<T>;
}

export type Observer<T> = (event: T) => void | Promise<void>;

export interface EventChannel {
  /** Subscribes; returns the function that unsubscribes. */
  on<T>(key: EventKey<T>, observer: Observer<T>): () => void;
  /** True when someone listens: emitters skip building events nobody reads. */
  observed(key: EventKey<unknown>): boolean;
  emit<T>(key: EventKey<T>, event: T): void;
}

export function createEventChannel(logger: Logger): EventChannel {
  const observers = new Map<EventKey<unknown>, Observer<never>[]>();
  const failed = (key: EventKey<unknown>, error: unknown) =>
    logger.error({ err: error, event: key.name }, "an observer failed (ignored)");
  return {
    on(key, observer) {
      const list = [...(observers.get(key) ?? []), observer as Observer<never>];
      observers.set(key, list);
      return () => {
        const remaining = (observers.get(key) ?? []).filter((entry) => entry !== observer);
        if (remaining.length > 0) observers.set(key, remaining);
        else observers.delete(key);
      };
    },
    observed(key) {
      return observers.has(key);
    },
    emit(key, event) {
      const list = observers.get(key);
      if (!list) return;
      for (const observer of list) {
        try {
          const outcome = (observer as Observer<typeof event>)(event);
          if (outcome && typeof outcome.then === "function") outcome.then(undefined, (error) => failed(key, error));
        } catch (error) {
          failed(key, error);
        }
      }
    },
  };
}
