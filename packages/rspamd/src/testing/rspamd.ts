// A real rspamd (Debian's rspamd) for tests, exported as @postern/rspamd/testing: a normal worker
// speaking rspamd's HTTP protocol on a loopback port and a Unix socket and, with `milter: true`, a
// proxy worker speaking the milter protocol that scans itself (self_scan) — @postern/milter's tests
// use that one. From a minimal configuration written into a temporary folder: no module that would
// reach the network is loaded, DNS points at the test's fake server, the public-suffix list is five
// lines and hyperscan is off, so it answers in about two seconds instead of half a minute. Lua
// rules let a test see and steer what rspamd does:
//   POSTERN_ENVELOPE   a symbol whose options echo what rspamd was told (IP, HELO, From, Rcpt …);
//   X-Test-Action: A   rspamd recommends action A (a pre-result with the message "forced by the test: A");
//   X-Test-Milter: C   rspamd's milter block asks for the change C (see `milterReplies` and the
//                      steering rule: also discard, quarantine, no-action, spam-header, body, large-body).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { canConnect, type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";

export interface Rspamd extends Daemon {
  /** "http://127.0.0.1:PORT" of the normal worker. */
  readonly url: string;
  /** "unix:/…/rspamd.sock", the same worker. */
  readonly socketUrl: string;
  readonly port: number;
  /** How long rspamd took from spawn to answering /ping (ms). */
  readonly startMs: number;
  /** SIGSTOP the worker processes (the main process only supervises): rspamd hangs. */
  pauseWorkers(): Promise<void>;
  resumeWorkers(): Promise<void>;
  log(): Promise<string>;
}

/** An rspamd that also runs the milter (proxy) worker. */
export interface RspamdWithMilter extends Rspamd {
  /** "inet:127.0.0.1:PORT" of the milter (proxy) worker. */
  readonly milterAddress: string;
}

export interface RspamdOptions {
  /** "127.0.0.1:PORT" of the fake DNS server rspamd resolves through. */
  dnsServer: string;
  startTimeoutMs?: number;
  /** Also run the proxy worker in milter mode, scanning itself. */
  milter?: boolean;
}

/** The milter changes X-Test-Milter asks for, as rspamd's Lua API takes them. */
const milterReplies = `
local milter_replies = {
  headers = {
    add_headers = {
      ["X-Added"] = "added by rspamd",
      ["X-Inserted"] = { value = "on top", order = 0 },
      ["X-Twice"] = { { value = "first" }, { value = "second" } },
    },
    remove_headers = { ["X-Remove-Me"] = 0, ["X-Remove-Last"] = -1 },
  },
  recipients = { add_rcpt = { "added@example.net" }, del_rcpt = { "removed@example.net" } },
  ["unknown-recipient"] = { add_rcpt = { "nobody@elsewhere.example" } },
  -- One field added at the end, one on top, the first X-Remove-Me removed: one milter action each.
  ["one-header-each"] = {
    add_headers = { ["X-Added"] = "added by rspamd", ["X-Inserted"] = { value = "on top", order = 0 } },
    remove_headers = { ["X-Remove-Me"] = 1 },
  },
  sender = { change_from = "<bounces@example.net>" },
}
`;

const rules = `
${milterReplies}
rspamd_config:register_symbol({
  name = "POSTERN_ENVELOPE",
  score = 0.1,
  callback = function(task)
    local rcpts = {}
    for _, rcpt in ipairs(task:get_recipients('smtp') or {}) do table.insert(rcpts, rcpt.addr) end
    local from = (task:get_from('smtp') or {})[1]
    local header = function(name) return tostring(task:get_request_header(name)) end
    return true,
      "ip=" .. tostring(task:get_from_ip()),
      "helo=" .. tostring(task:get_helo()),
      "hostname=" .. tostring(task:get_hostname()),
      "from=" .. (from and from.addr or "-"),
      "rcpt=" .. table.concat(rcpts, " "),
      "queue-id=" .. tostring(task:get_queue_id()),
      "user=" .. tostring(task:get_user()),
      "mta-name=" .. header('MTA-Name'),
      "tls-version=" .. header('TLS-Version'),
      "tls-cipher=" .. header('TLS-Cipher'),
      "settings-id=" .. header('Settings-ID')
  end,
})

rspamd_config:register_symbol({
  name = "POSTERN_TEST_STEER",
  score = 0.0,
  callback = function(task)
    local change = task:get_header("X-Test-Milter")
    if milter_replies[change] then
      task:set_milter_reply(milter_replies[change])
    elseif change == "discard" or change == "quarantine" then
      task:set_milter_reply({ reject = change })
      task:set_pre_result("reject", change .. " requested by the test")
    elseif change == "no-action" then
      task:set_milter_reply({ no_action = true })
      task:set_pre_result("reject", "would be rejected")
    elseif change == "spam-header" then
      task:set_milter_reply({ spam_header = "spam, says rspamd" })
      task:set_pre_result("add header", "marked by the test")
    elseif change == "body" then
      task:set_message("From: <sender@example.org>\\r\\nSubject: body\\r\\n\\r\\nThe body rspamd wrote.\\r\\n")
    elseif change == "large-body" then
      task:set_message("From: <sender@example.org>\\r\\n\\r\\n" .. string.rep("0123456789abcdef\\r\\n", 20000))
    end
    local action = task:get_header("X-Test-Action")
    if action then task:set_pre_result(action, "forced by the test: " .. action) end
    return false
  end,
})
`;

/** The PIDs of a process's children (rspamd's workers). */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return text.trim() === "" ? [] : text.trim().split(/\s+/).map(Number);
}

async function answersPing(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(1000) });
    return response.ok && (await response.text()).trim() === "pong";
  } catch {
    return false;
  }
}

/**
 * The log says a worker took the hyperscan helper's notice — or 10 s have passed, for an rspamd
 * built without hyperscan, which starts no helper.
 */
async function hyperscanSettled(logFile: string, started: number): Promise<boolean> {
  if (Date.now() - started > 10_000) return true;
  return (await readFile(logFile, "utf8").catch(() => "")).includes("rspamd_worker_hyperscan_ready");
}

export function startRspamd(options: RspamdOptions & { milter: true }): Promise<RspamdWithMilter>;
export function startRspamd(options: RspamdOptions): Promise<Rspamd>;
export async function startRspamd(options: RspamdOptions): Promise<Rspamd | RspamdWithMilter> {
  const dir = await makeTempDir("rspamd");
  const port = await freePort();
  const milterPort = options.milter ? await freePort() : undefined;
  const milterWorker =
    milterPort === undefined
      ? ""
      : `worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${milterPort}";
  milter = yes;
  timeout = 30s;
  upstream "local" { default = yes; self_scan = yes; }
  count = 1;
}
`;
  const socketPath = join(dir, "rspamd.sock");
  await writeFile(join(dir, "rules.lua"), rules);
  await writeFile(join(dir, "tld.dat"), "com\norg\nnet\ntest\nexample\n");
  const config = join(dir, "rspamd.conf");
  await writeFile(
    config,
    `options {
  pidfile = "${join(dir, "rspamd.pid")}";
  url_tld = "${join(dir, "tld.dat")}";
  disable_hyperscan = true;
  dns { nameserver = ["${options.dnsServer}"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "${join(dir, "rspamd.log")}"; level = "info"; }
worker "normal" {
  bind_socket = "127.0.0.1:${port}";
  bind_socket = "${socketPath} mode=0666";
  count = 1;
  task_timeout = 20s;
}
${milterWorker}actions { reject = 15; add_header = 6; greylist = 4; }
lua = "${join(dir, "rules.lua")}";
`,
  );
  const started = Date.now();
  const daemon = await startDaemon({
    name: "rspamd",
    command: "rspamd",
    // -f: foreground; -i: the tests run as root, which rspamd refuses without it.
    args: ["-f", "-i", "-c", config],
    dir,
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    // Ready also means the hyperscan helper's "database loaded" notice has reached the workers
    // (about 2 s after start, even with hyperscan disabled): a worker drops the connection that
    // arrives at that moment, seen as EPIPE over the Unix socket.
    ready: async () =>
      (await answersPing(port)) &&
      (milterPort === undefined || (await canConnect(milterPort))) &&
      (await hyperscanSettled(join(dir, "rspamd.log"), started)),
  });
  const startMs = Date.now() - started;
  const signalWorkers = async (signal: NodeJS.Signals) => {
    for (const pid of await childrenOf(daemon.pid)) {
      try {
        process.kill(pid, signal);
      } catch {
        // a worker that is gone needs no signal
      }
    }
    // Signals are delivered asynchronously; give the kernel a moment before the test goes on.
    await sleep(50);
  };
  return Object.assign(Object.create(daemon) as Daemon, {
    url: `http://127.0.0.1:${port}`,
    socketUrl: `unix:${socketPath}`,
    port,
    startMs,
    pauseWorkers: () => signalWorkers("SIGSTOP"),
    resumeWorkers: () => signalWorkers("SIGCONT"),
    log: () => readFile(join(dir, "rspamd.log"), "utf8").catch(() => ""),
    ...(milterPort === undefined ? {} : { milterAddress: `inet:127.0.0.1:${milterPort}` }),
  }) as Rspamd;
}
