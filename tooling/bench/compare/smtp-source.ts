// One run of Postfix's smtp-source: the same client for every server in the table.
import { spawn } from "node:child_process";

export interface Scenario {
  id: string;
  label: string;
  sessions: number;
  /** -d: send every message of a session over one connection. */
  reuse: boolean;
}

export const scenarios: Scenario[] = [
  { id: "s20", label: "20 sessions, 1 msg/conn", sessions: 20, reuse: false },
  { id: "s200", label: "200 sessions, 1 msg/conn", sessions: 200, reuse: false },
  { id: "s20d", label: "20 sessions, reuse (-d)", sessions: 20, reuse: true },
];

/** `{ length }`: smtp-source's own message of that many payload bytes; `{ file }`: a prepared message. */
export type Payload = { length: number } | { file: string };

export interface SourceRun {
  messages: number;
  seconds: number;
  /** What smtp-source printed when it gave up (it aborts on any unexpected reply). */
  error: string | undefined;
}

export function smtpSource(port: number, scenario: Scenario, messages: number, payload: Payload): Promise<SourceRun> {
  const args = [
    "-s",
    String(scenario.sessions),
    "-m",
    String(messages),
    ...(scenario.reuse ? ["-d"] : []),
    ...("file" in payload ? ["-F", payload.file] : ["-l", String(payload.length)]),
    "-f",
    "bench@example.org",
    "-t",
    "user@bench.test",
    "-M",
    "client.bench",
    // Retry connections refused while a listen queue is full instead of giving up.
    "-C",
    "5",
    `127.0.0.1:${port}`,
  ];
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("smtp-source", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const error = code === 0 ? undefined : stderr.trim().split("\n")[0] || `exit ${code}`;
      resolve({ messages, seconds, error });
    });
  });
}
