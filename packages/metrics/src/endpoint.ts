// The HTTP listener of the metrics plugin. It outlives a configuration reload: the new plugin
// instance is set up while the old one still serves, so it takes over the bound socket, the
// registry and the metric objects of the endpoint at the same address and port (counters go on
// counting), and the old instance leaves them when it closes. A plain node:http server — three
// GET routes need no framework.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { PosternError } from "@postern/core";
import { collectDefaultMetrics, Registry } from "prom-client";
import { CoreMetrics } from "./core-metrics.ts";

export type Handler = (request: IncomingMessage, response: ServerResponse) => void;

export interface Endpoint {
  readonly key: string;
  readonly server: Server;
  /** Replaced only when a reload changes the prefix (new metric names). */
  registry: Registry;
  core: CoreMetrics;
  prefix: string;
  owner: symbol;
  handler: Handler;
}

const endpoints = new Map<string, Endpoint>();

export interface EndpointOptions {
  readonly address: string;
  readonly port: number;
  readonly prefix: string;
  readonly defaultMetrics: boolean;
}

function metricsFor(options: EndpointOptions): { registry: Registry; core: CoreMetrics } {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: options.prefix });
  return { registry, core: new CoreMetrics(registry, options.prefix) };
}

/** The endpoint at the address (taken over when one is open there), owned by `owner` from now on. */
export async function claimEndpoint(options: EndpointOptions, owner: symbol, handler: Handler): Promise<Endpoint> {
  const existing = options.port === 0 ? undefined : endpoints.get(`${options.address}:${options.port}`);
  if (existing) {
    if (existing.prefix !== options.prefix) Object.assign(existing, metricsFor(options), { prefix: options.prefix });
    existing.owner = owner;
    existing.handler = handler;
    return existing;
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new PosternError(
          "METRICS_LISTEN_FAILED",
          `@postern/metrics: cannot listen on ${options.address}:${options.port}: ${error.code ?? error.message}`,
          { plugin: "@postern/metrics", cause: error },
        ),
      ),
    );
    server.listen(options.port, options.address, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const endpoint: Endpoint = {
    key: `${options.address}:${bound.port}`,
    server,
    ...metricsFor(options),
    prefix: options.prefix,
    owner,
    handler,
  };
  server.on("request", (request, response) => endpoint.handler(request, response));
  endpoints.set(endpoint.key, endpoint);
  return endpoint;
}

/** Leaves the endpoint: closes it when `owner` still owns it (no newer instance took it over). */
export async function releaseEndpoint(endpoint: Endpoint, owner: symbol): Promise<void> {
  if (endpoint.owner !== owner) return;
  endpoints.delete(endpoint.key);
  await new Promise<void>((resolve) => {
    endpoint.server.close(() => resolve());
    endpoint.server.closeAllConnections();
  });
}

export function boundPort(endpoint: Endpoint): number {
  return (endpoint.server.address() as AddressInfo).port;
}
