// A `postern start` for a fault test: one config in a temp folder, started as a child process,
// stopped with SIGTERM at the end (its exit code must be 0: a fault must not leave it broken).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type PosternProcess, startPostern, writeConfig } from "./postern-process.ts";

export interface FaultServer {
  readonly dir: string;
  readonly port: number;
  readonly process: PosternProcess;
  /** Undefined while it runs; its output once it has exited (for acknowledgedMore). */
  exited(): string | undefined;
  /** SIGTERM; resolves with how it exited and how long it took. */
  stop(): Promise<{ exit: number | NodeJS.Signals; ms: number }>;
  cleanup(): Promise<void>;
}

export async function startFaultServer(
  name: string,
  build: (dir: string) => Record<string, unknown> | Promise<Record<string, unknown>>,
  options: { dir?: string; port?: number } = {},
): Promise<FaultServer> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `postern-fault-${name}-`)));
  const port = options.port ?? (await freePort());
  const built = await build(dir);
  const config = {
    hostname: `mx.${name}.test`,
    spoolDir: join(dir, "spool"),
    log: { level: "warn" },
    ...built,
    // One listener on the chosen port; build() may set its other options.
    listeners: [
      {
        address: "127.0.0.1",
        socketTimeoutMs: 60_000,
        ...((built.listeners as Record<string, unknown>[] | undefined)?.[0] ?? {}),
        port,
      },
    ],
  };
  const process = await startPostern(await writeConfig(dir, config));
  return {
    dir,
    port,
    process,
    exited: () => (process.child.exitCode === null && process.child.signalCode === null ? undefined : process.output()),
    async stop() {
      const started = Date.now();
      if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill("SIGTERM");
      const exit = await process.exited;
      return { exit, ms: Date.now() - started };
    },
    async cleanup() {
      if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill("SIGKILL");
      await process.exited;
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
