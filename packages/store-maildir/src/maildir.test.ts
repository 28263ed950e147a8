import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ConfigError, type Hooks, type Message, type Plugin } from "@postern/core";
import {
  buildMessage,
  bulkyText,
  claimRecipients,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import maildir from "./index.ts";
import { mailboxPath } from "./mailbox-path.ts";

let base: string;
let root: string;
let server: TestServer | undefined;
let counter = 0;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "postern-maildir-test-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** A fresh root per test. */
function freshRoot(): string {
  root = join(base, `root-${++counter}`);
  return root;
}

async function files(dir: string): Promise<string[]> {
  return readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
}

async function start(plugins: Plugin[], config: Parameters<typeof startTestServer>[0]["config"] = {}) {
  server = await startTestServer({ plugins, hostname: "localhost", config });
  return server;
}

describe("delivery", () => {
  it("stores the message byte-exact in new/, named with S= and W=, nothing left in tmp/", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    const raw = buildMessage({ to: "alice@example.com", subject: "exact" });
    const result = await test.send({ to: "alice@example.com", raw });
    expect(result.response).toMatch(/^250 /);

    const mailbox = join(root, "example.com", "alice");
    const delivered = await files(join(mailbox, "new"));
    expect(delivered).toHaveLength(1);
    const stored = await readFile(join(mailbox, "new", delivered[0]!));
    expect(stored.toString("latin1")).toMatch(/^Received: from client\.test /);
    expect(stored.subarray(stored.length - raw.length).equals(raw)).toBe(true);
    const sizes = /,S=(\d+),W=(\d+)$/.exec(delivered[0]!);
    expect(Number(sizes?.[1])).toBe(stored.length);
    expect(Number(sizes?.[2])).toBe(stored.length); // CRLF throughout
    expect(await files(join(mailbox, "tmp"))).toEqual([]);
    expect(await files(join(mailbox, "cur"))).toEqual([]);
    for (const dir of ["", "cur", "new", "tmp"]) expect((await stat(join(mailbox, dir))).mode & 0o777).toBe(0o700);
  });

  it("logs one 'stored in Maildir' line naming the file, with no key repeated", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    await test.send({ to: "alice@example.com", raw: buildMessage({ to: "alice@example.com" }) });
    const [delivered] = await files(join(root, "example.com", "alice", "new"));
    const stored = test.logs.filter((line) => line.msg === "stored in Maildir");
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      name: "postern",
      plugin: "@postern/store-maildir",
      file: delivered,
      mailboxes: 1,
    });
    expect(test.logKeyClashes).toEqual([]);
  });

  it("links one file into every recipient's mailbox (one inode), once per mailbox", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    const raw = buildMessage({ to: "several" });
    await test.send({ to: ["alice@example.com", "bob@example.com", "carol@example.org", "Alice@Example.com"], raw });

    const mailboxes = [
      join(root, "example.com", "alice"),
      join(root, "example.com", "bob"),
      join(root, "example.org", "carol"),
    ];
    const inodes = new Set<number>();
    for (const mailbox of mailboxes) {
      const delivered = await files(join(mailbox, "new"));
      expect(delivered).toHaveLength(1); // Alice@Example.com is the same mailbox as alice@example.com
      const info = await stat(join(mailbox, "new", delivered[0]!));
      inodes.add(info.ino);
      expect(info.nlink).toBe(3); // three links in new/, the tmp/ name removed
      expect(await files(join(mailbox, "tmp"))).toEqual([]);
    }
    expect(inodes.size).toBe(1);
  });

  // (No NUL among the bytes: 8BITMIME data may not carry it, RFC 6152, and core refuses it.)
  it("stores dot-stuffed lines un-stuffed and 8-bit bytes exactly", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    const original = Buffer.concat([
      Buffer.from("From: <a@example.org>\r\nTo: <dots@example.com>\r\nSubject: dots\r\n\r\n", "latin1"),
      Buffer.from(".leading dot\r\n..\r\n.\r\n", "latin1"),
      Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0xff, 0x80, 0x01, 0x7f, 0x0d, 0x0a]),
      Buffer.from("last line\r\n", "latin1"),
    ]);
    // On the wire every line starting with "." gets one more (RFC 5321 §4.5.2).
    const stuffed = Buffer.from(original.toString("latin1").replace(/^\./gm, ".."), "latin1");

    const client = await test.connect();
    await client.read();
    await client.command("EHLO client.test");
    expect((await client.command("MAIL FROM:<a@example.org> BODY=8BITMIME")).code).toBe(250);
    expect((await client.command("RCPT TO:<dots@example.com>")).code).toBe(250);
    expect((await client.command("DATA")).code).toBe(354);
    client.write(Buffer.concat([stuffed, Buffer.from(".\r\n")]));
    const reply = await client.read();
    client.close();
    expect(reply.code).toBe(250);

    const mailbox = join(root, "example.com", "dots");
    const [name] = await files(join(mailbox, "new"));
    const stored = await readFile(join(mailbox, "new", name!));
    expect(stored.subarray(stored.length - original.length).equals(original)).toBe(true);
  });

  it("gives concurrent deliveries to one mailbox distinct names", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    await Promise.all(
      [1, 2, 3, 4].map((n) => test.send({ to: "busy@example.com", raw: buildMessage({ subject: `n${n}` }) })),
    );
    expect(await files(join(root, "example.com", "busy", "new"))).toHaveLength(4);
  });

  it("follows the layout option and the server host name for the bare postmaster", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot(), layout: "vmail/{domain}/{address}" })]);
    await test.send({ to: ["Bob@Example.com", "postmaster"], raw: buildMessage() });
    expect(await files(join(root, "vmail", "example.com", "bob@example.com", "new"))).toHaveLength(1);
    expect(await files(join(root, "vmail", "localhost", "postmaster@localhost", "new"))).toHaveLength(1);
  });

  it("takes only its routes: another route group falls through to core's 451", async () => {
    const test = await start([claimRecipients({ route: "relay" }), maildir({ root: freshRoot() })]);
    const error = await test.send({ to: "far@elsewhere.example", raw: buildMessage() }).then(
      () => undefined,
      (caught: SendError) => caught,
    );
    expect(error?.responseCode).toBe(451);
    expect(error?.response).toContain("4.3.0");
    expect(await files(root)).toEqual([]); // root exists (setup) but holds no mailbox
  });

  it("refuses, permanently and storing nothing, a recipient that would escape its directory", async () => {
    const test = await start([claimRecipients(), maildir({ root: freshRoot() })]);
    // smtp-server already refuses ".." and a leading dot in local parts; the unit test below covers those.
    for (const to of ["safe@example.com", "x/y@example.com", "x\\y@example.com", "u@[127.0.0.1]"]) {
      const client = await test.connect();
      await client.read();
      await client.command("EHLO client.test");
      await client.command("MAIL FROM:<a@example.org>");
      const recipients = ["safe@example.com", to];
      for (const recipient of recipients) expect((await client.command(`RCPT TO:<${recipient}>`)).code).toBe(250);
      await client.command("DATA");
      client.write(Buffer.concat([buildMessage(), Buffer.from(".\r\n")]));
      const reply = await client.read();
      client.close();
      if (to === "safe@example.com") {
        expect(reply.code).toBe(250);
        continue;
      }
      expect(reply.code, `${to}: ${reply.text}`).toBe(550);
      expect(reply.enhanced).toBe("5.1.1");
    }
    expect(await files(join(root, "example.com"))).toEqual(["safe"]);
    expect(await files(join(root, "example.com", "safe", "new"))).toHaveLength(1);
    expect(await files(join(root, "example.com", "safe", "tmp"))).toEqual([]);
  });
});

describe("mailbox paths", () => {
  it("refuses every value that could leave its path segment", () => {
    const at = (address: string) => mailboxPath("/srv/mail", "{domain}/{user}", address, "mx.example");
    expect(at("Alice@Example.COM")).toEqual({ ok: true, path: "/srv/mail/example.com/alice" });
    expect(at("postmaster")).toEqual({ ok: true, path: "/srv/mail/mx.example/postmaster" });
    expect(at("bob@bücher.example")).toEqual({ ok: true, path: "/srv/mail/xn--bcher-kva.example/bob" });
    for (const address of [
      "../x@example.com",
      "..@example.com",
      ".@example.com",
      ".hidden@example.com",
      "a/b@example.com",
      "a\\b@example.com",
      "a\0b@example.com",
      "a\nb@example.com",
      "@example.com",
      "user@[192.0.2.1]",
      "user@..",
      `${"x".repeat(256)}@example.com`,
    ]) {
      expect(at(address).ok, address).toBe(false);
    }
  });
});

describe("large messages", () => {
  it("streams a 30 MB message to disk as it is read, and stores it exactly", async () => {
    const inner = maildir({ root: freshRoot() });
    const innerQueue = inner.hooks?.queue as Hooks["queue"];
    const tmpDir = join(root, "example.com", "big", "tmp");
    /** Bytes handed to the store minus bytes already in its tmp/ file, sampled at each chunk. */
    const lags: number[] = [];

    // Hands the store a message whose stream() records how far the file on disk trails what
    // the store has read. A store that buffered the message would trail by ~30 MB.
    const watched = (message: Message): Message => {
      const stream = () =>
        Readable.from(
          (async function* () {
            let handed = 0;
            for await (const chunk of message.stream() as AsyncIterable<Buffer>) {
              const [name] = await files(tmpDir);
              const onDisk = name ? (await stat(join(tmpDir, name))).size : 0;
              lags.push(handed - onDisk);
              handed += chunk.length;
              yield chunk;
            }
          })(),
        );
      // Everything else is the message itself (bound to it: it keeps private state).
      return new Proxy(message, {
        get(target, key) {
          if (key === "stream") return stream;
          const value = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    };
    const store: Plugin = {
      name: "test:watched-maildir",
      setup: (context) => inner.setup?.(context),
      hooks: {
        queue: (transaction, message, group, context) => innerQueue(transaction, watched(message), group, context),
      },
    };
    const test = await start([claimRecipients(), store], { limits: { maxMessageSize: "40MB" } });
    const raw = buildMessage({ to: "big@example.com", text: bulkyText(30 * 1024 * 1024) });
    expect(raw.length).toBeGreaterThan(30 * 1024 * 1024);
    const result = await test.send({ to: "big@example.com", raw });
    expect(result.response).toMatch(/^250 /);

    expect(lags.length).toBeGreaterThan(20);
    expect(Math.max(...lags)).toBeLessThan(4 * 1024 * 1024);
    const [name] = await files(join(root, "example.com", "big", "new"));
    const stored = await readFile(join(root, "example.com", "big", "new", name!));
    expect(stored.subarray(stored.length - raw.length).equals(raw)).toBe(true);
    expect(await files(tmpDir)).toEqual([]);
  });
});

describe("options", () => {
  const failure = (options: unknown): ConfigError => {
    try {
      maildir(options as never);
    } catch (error) {
      if (error instanceof ConfigError) return error;
      throw error;
    }
    throw new Error("expected a ConfigError");
  };

  it("names the offending key", () => {
    expect(failure({}).key).toBe("@postern/store-maildir.root");
    expect(failure({ root: "/x", layout: "../{user}" }).key).toBe("@postern/store-maildir.layout");
    expect(failure({ root: "/x", layout: "/abs/{user}" }).key).toBe("@postern/store-maildir.layout");
    expect(failure({ root: "/x", layout: "{domain}/{login}" }).message).toContain("{login}");
    expect(failure({ root: "/x", routes: [] }).key).toBe("@postern/store-maildir.routes");
    expect(failure({ root: "/x", rout: ["local"] }).message).toContain("rout");
  });
});
