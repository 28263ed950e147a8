// @postern/metrics — Prometheus metrics for core (from the observer channel) and for every plugin
// that keeps a prom-client registry (outbound's queue and deliveries), on one endpoint of its own:
// /metrics, /healthz (the process answers) and /readyz (listeners bound, stores and queue answering).
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Plugin, parseOptions, type ServerContext } from "@postern/core";
import type { Registry } from "prom-client";
import { boundPort, claimEndpoint, type Endpoint, releaseEndpoint } from "./endpoint.ts";
import { type MetricsOptions, metricsOptionsSchema } from "./options.ts";
import { readiness } from "./readiness.ts";

export type { CoreMetrics } from "./core-metrics.ts";
export type { MetricsOptions } from "./options.ts";
export { metricsOptionsSchema } from "./options.ts";
export type { Readiness, ReadinessCheck, ReadinessProbe } from "./readiness.ts";
export { readiness } from "./readiness.ts";

const pluginName = "@postern/metrics";

export interface MetricsPlugin extends Plugin {
  readonly name: typeof pluginName;
  /** The registry /metrics serves (with every plugin's own); register your metrics here. Set in setup. */
  readonly registry: Registry | undefined;
  /** The port /metrics listens on, once set up (for `port: 0`). */
  readonly port: number | undefined;
}

/** What a plugin's own prom-client registry looks like (outbound's `metrics`). */
interface RegistryLike {
  metrics(): Promise<string>;
}

const isRegistry = (value: unknown): value is RegistryLike =>
  typeof value === "object" && value !== null && typeof (value as RegistryLike).metrics === "function";

/** Registries plugins expose as `metrics` (the convention outbound follows). */
function pluginRegistries(context: ServerContext, own: Registry): RegistryLike[] {
  return context.plugins
    .map((plugin) => (plugin as { metrics?: unknown }).metrics)
    .filter((candidate): candidate is RegistryLike => isRegistry(candidate) && candidate !== own);
}

function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  response.end(body);
}

export default function metrics(input: MetricsOptions = {}): MetricsPlugin {
  const options = parseOptions(metricsOptionsSchema, input, pluginName);
  const owner = Symbol(pluginName);
  let endpoint: Endpoint | undefined;
  let unsubscribe: (() => void) | undefined;

  const handlerFor =
    (context: ServerContext) =>
    (request: IncomingMessage, response: ServerResponse): void => {
      const path = (request.url ?? "/").split("?")[0];
      if (request.method !== "GET" && request.method !== "HEAD") {
        send(response, 405, "text/plain", "only GET\n");
        return;
      }
      if (path === "/healthz") {
        send(response, 200, "text/plain", "ok\n");
        return;
      }
      if (path === "/readyz") {
        void readiness(context, options.readyTimeoutMs).then(
          (state) => send(response, state.ready ? 200 : 503, "application/json", `${JSON.stringify(state)}\n`),
          (error: Error) => send(response, 500, "text/plain", `${error.message}\n`),
        );
        return;
      }
      if (path === "/metrics") {
        const registry = endpoint!.registry;
        void Promise.all([
          registry.metrics(),
          ...pluginRegistries(context, registry).map((other) => other.metrics()),
        ]).then(
          (texts) => send(response, 200, registry.contentType, texts.join("\n")),
          (error: Error) => send(response, 500, "text/plain", `${error.message}\n`),
        );
        return;
      }
      send(response, 404, "text/plain", "/metrics, /healthz or /readyz\n");
    };

  const plugin: MetricsPlugin = {
    name: pluginName,
    get registry() {
      return endpoint?.registry;
    },
    get port() {
      return endpoint && boundPort(endpoint);
    },
    async setup(context) {
      endpoint = await claimEndpoint(
        {
          address: options.listen.address,
          port: options.listen.port,
          prefix: options.prefix,
          defaultMetrics: options.defaultMetrics,
        },
        owner,
        handlerFor(context),
      );
      unsubscribe = endpoint.core.observe(context.events);
      const log = context.logger.child({ plugin: pluginName });
      log.info({ address: options.listen.address, port: boundPort(endpoint) }, "metrics listening");
    },
    async close() {
      unsubscribe?.();
      if (endpoint) await releaseEndpoint(endpoint, owner);
    },
  };
  return plugin satisfies Plugin;
}
