import { z } from "zod";

export const metricsOptionsSchema = z.strictObject({
  /** Where /metrics, /healthz and /readyz listen. Keep it on loopback or a private network. */
  listen: z
    .strictObject({
      address: z.string().min(1).default("127.0.0.1"),
      port: z.number({ error: "expected a port number 0–65535" }).int().min(0).max(65535).default(9464),
    })
    .prefault({}),
  /** Prefix of every metric name core's events make. */
  prefix: z
    .string()
    .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, { error: "expected a Prometheus name prefix such as postern_" })
    .default("postern_"),
  /** prom-client's process and Node.js metrics (CPU, memory, event-loop lag, GC), under the prefix. */
  defaultMetrics: z.boolean().default(true),
  /** How long each plugin's ready() may take during /readyz before it counts as not ready. */
  readyTimeoutMs: z.number().int().positive().default(2000),
});

export type MetricsOptions = z.input<typeof metricsOptionsSchema>;
export type ResolvedMetricsOptions = z.output<typeof metricsOptionsSchema>;
