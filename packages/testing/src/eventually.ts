// Waiting for a condition the test cannot trigger directly (a server noticing that Redis died, a
// counter reaching zero): polled every 100 ms, with a deadline so a test fails instead of hanging.
import { setTimeout as sleep } from "node:timers/promises";

/** Resolves once `attempt` answers true; rejects after `timeoutMs`. */
export async function eventually(attempt: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await attempt()) return;
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Whether a plugin's ready() (what /readyz of @postern/metrics asks) resolves now. */
export function isReady(plugin: { ready(): Promise<void> }): Promise<boolean> {
  return plugin.ready().then(
    () => true,
    () => false,
  );
}
