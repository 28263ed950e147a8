// What `GET /api/status` (and `postern status`) answers: this node, its listeners, sessions open,
// transactions seen since start, the queue, the plugins.
import type { ListeningAddress } from "@postern/core";
import type { QueueStats } from "@postern/outbound";

export interface Status {
  readonly hostname: string;
  readonly node: string;
  readonly pid: number;
  /** Epoch ms when this process started. */
  readonly startedAt: number;
  readonly uptimeSeconds: number;
  readonly listeners: readonly ListeningAddress[];
  /** SMTP sessions open now. */
  readonly sessions: number;
  /** Transactions ended since this process started, by outcome. */
  readonly transactions: Readonly<Record<string, number>>;
  readonly queue: QueueStats | undefined;
  readonly plugins: readonly string[];
  readonly versions: { readonly node: string };
}
