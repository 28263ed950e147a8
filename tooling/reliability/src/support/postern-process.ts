// The `postern start` command as a child process, run from source as an operator would run it,
// so a test can kill it with SIGKILL and start it again on the same config and data.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../../../apps/postern/src/cli.ts", import.meta.url));

export interface PosternProcess {
  readonly child: ChildProcess;
  /** What the process wrote to stderr so far (start-up lines, errors). */
  output(): string;
  /** Resolves with the exit code or signal once the process is gone. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Writes `config` as postern.yaml (JSON is YAML) into `dir`; returns the file. */
export async function writeConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, "postern.yaml");
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** Starts `postern start -c <configFile>` and resolves once it listens. */
export async function startPostern(
  configFile: string,
  timeoutMs = 60_000,
  options: { nodeArgs?: string[]; env?: Record<string, string> } = {},
): Promise<PosternProcess> {
  const child = spawn(
    process.execPath,
    ["--conditions=dev-source", ...(options.nodeArgs ?? []), cli, "start", "-c", configFile],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "", ...options.env },
    },
  );
  let output = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`postern did not listen within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const check = () => {
      if (!output.includes("listening on")) return;
      clearTimeout(timer);
      child.stderr!.off("data", check);
      resolve();
    };
    child.stderr!.on("data", check);
    exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`postern exited (${how}) before listening:\n${output}`));
    });
  });
  await ready;
  return { child, output: () => output, exited };
}
