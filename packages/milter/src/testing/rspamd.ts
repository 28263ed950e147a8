// A real rspamd (Debian's rspamd) whose proxy worker speaks the milter protocol and scans itself
// (self_scan), from a minimal configuration written here: no modules that would reach the network,
// DNS pointed at the test's fake server, a tiny public-suffix list and no hyperscan, so it starts
// in a second or two instead of half a minute. A Lua rule makes rspamd ask for each milter change
// on demand: the X-Test-Milter header of a message names the change.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { canConnect, type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";

export interface Rspamd extends Daemon {
  /** "inet:127.0.0.1:PORT" of the milter (proxy) worker. */
  readonly address: string;
  readonly startMs: number;
}

/** X-Test-Milter values and what rspamd's milter then asks for. */
const rules = `
local replies = {
  headers = { add_headers = { ["X-Added"] = "added by rspamd", ["X-Inserted"] = { value = "on top", order = 0 } },
              remove_headers = { ["X-Remove-Me"] = 1 } },
  recipients = { add_rcpt = { "added@example.net" }, del_rcpt = { "removed@example.net" } },
}
rspamd_config:register_symbol({
  name = "POSTERN_TEST_MILTER",
  score = 0.0,
  callback = function(task)
    local wanted = task:get_header("X-Test-Milter")
    if replies[wanted] then
      task:set_milter_reply(replies[wanted])
    elseif wanted == "quarantine" or wanted == "discard" then
      task:set_milter_reply({ reject = wanted })
      task:set_pre_result("reject", wanted .. " requested by the test")
    elseif wanted == "body" then
      task:set_message("From: <sender@example.org>\\r\\nSubject: body\\r\\n\\r\\nThe body rspamd wrote.\\r\\n")
    elseif wanted == "large-body" then
      task:set_message("From: <sender@example.org>\\r\\n\\r\\n" .. string.rep("0123456789abcdef\\r\\n", 20000))
    end
    return false
  end,
})
`;

export async function startRspamd(options: { dnsServer: string }): Promise<Rspamd> {
  const dir = await makeTempDir("rspamd");
  const port = await freePort();
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
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${port}";
  milter = yes;
  timeout = 30s;
  upstream "local" { default = yes; self_scan = yes; }
  count = 1;
}
actions { reject = 15; add_header = 6; greylist = 4; }
lua = "${join(dir, "rules.lua")}";
`,
  );
  const started = Date.now();
  const daemon = await startDaemon({
    name: "rspamd",
    command: "rspamd",
    // -i: the tests run as root; rspamd refuses that without it.
    args: ["-f", "-i", "-c", config],
    dir,
    startTimeoutMs: 60_000,
    ready: () => canConnect(port),
  });
  return Object.assign(Object.create(daemon) as Daemon, {
    address: `inet:127.0.0.1:${port}`,
    startMs: Date.now() - started,
  }) as Rspamd;
}
