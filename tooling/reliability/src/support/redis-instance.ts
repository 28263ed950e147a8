// A Redis server of the test's own on its own loopback port (never the shared one on 6379), so a
// fault test can kill it and start it again. Nothing is kept on disk: a restart starts empty, as
// after a crash of a Redis without persistence.
import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { freePort } from "./postern-process.ts";

export interface RedisInstance {
  readonly port: number;
  readonly url: string;
  /** SIGKILL; `start()` brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let reply = "";
    socket.setEncoding("latin1");
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: string) => {
      reply += chunk;
      if (reply.includes("\r\n")) {
        socket.destroy();
        resolve(reply.startsWith("+PONG"));
      }
    });
    socket.once("error", () => resolve(false));
  });
}

export async function startRedis(): Promise<RedisInstance> {
  const port = await freePort();
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
      { stdio: "ignore" },
    );
    server = child;
    exited = new Promise((resolve) => child.once("exit", () => resolve()));
    for (let waited = 0; !(await answersPing(port)); waited += 50) {
      if (child.exitCode !== null || waited > 20_000) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stopWith = async (signal: NodeJS.Signals) => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
    server = undefined;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => stopWith("SIGKILL"),
    start,
    stop: () => stopWith("SIGTERM"),
  };
}
