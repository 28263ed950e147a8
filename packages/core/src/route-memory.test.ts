// A transaction answered 451 after some of its route groups were stored is retried whole by the
// client; core remembers what was stored and the retry stores only the rest (route-memory.ts).
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  bulkyText,
  type CapturedMessage,
  memoryQueue,
  type SendError,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import {
  accept,
  defer,
  type Plugin,
  reject,
  type ServerConfigInput,
  type TransactionEndedEvent,
  transactionEnded,
} from "./index.ts";
import { RouteMemory, storedKey, type TransactionEnvelope, transactionFingerprint } from "./route-memory.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const routeByDomain: Plugin = {
  name: "route-by-domain",
  hooks: { rcptTo: (_tx, r) => accept({ route: r.address.endsWith("@local.test") ? "local" : "relay" }) },
};

/**
 * Stores the `relay` group (recipients only), after failing `failures` times: a 451 deferral, a
 * throw (451 from core) or a 550 rejection.
 */
function flakyRelay(failures: number, how: "defer" | "throw" | "reject" = "defer") {
  const messages: { recipients: string[] }[] = [];
  const state = { failures, refused: 0, how };
  const plugin: Plugin = {
    name: "flaky-relay",
    hooks: {
      queue(_transaction, _message, group) {
        if (group.route !== "relay") return undefined;
        if (state.failures > 0) {
          state.failures--;
          state.refused++;
          if (state.how === "throw") throw new Error("relay queue unavailable");
          if (state.how === "reject") return reject("5.7.1", "Relaying refused");
          return defer("4.3.0", "Relay queue unavailable, try again later");
        }
        messages.push({ recipients: group.recipients.map((recipient) => recipient.address) });
        return accept();
      },
    },
  };
  return { plugin, messages, state };
}

function endedRecorder() {
  const ended: TransactionEndedEvent[] = [];
  const plugin: Plugin = {
    name: "ended-recorder",
    setup(context) {
      context.events.on(transactionEnded, (event) => void ended.push(event));
    },
    hooks: {},
  };
  return { plugin, ended };
}

async function sendError(sending: Promise<unknown>): Promise<SendError> {
  try {
    await sending;
  } catch (error) {
    return error as SendError;
  }
  throw new Error("expected the send to fail");
}

const recipientsOf = (messages: readonly Pick<CapturedMessage, "recipients">[]) => messages.map((m) => m.recipients);

async function start(relay: ReturnType<typeof flakyRelay>, limits: ServerConfigInput["limits"] = {}) {
  const local = memoryQueue({ routes: ["local"] });
  const recorder = endedRecorder();
  server = await startTestServer({
    plugins: [routeByDomain, recorder.plugin, local.plugin, relay.plugin],
    config: { limits },
  });
  return { server, local, ended: recorder.ended };
}

describe("a retry after a partial failure among route groups", () => {
  it("stores only the route group that failed: one copy in each store, 250 on the retry", async () => {
    const relay = flakyRelay(1);
    const { server, local, ended } = await start(relay);
    const raw = buildMessage({ subject: "two routes" });
    const to = ["alice@local.test", "bob@remote.test"];

    const first = await sendError(server.send({ to, raw }));
    expect(first.responseCode).toBe(451);
    expect(relay.state.refused).toBe(1);
    expect(recipientsOf(local.messages)).toEqual([["alice@local.test"]]);

    const retry = await server.send({ to, raw });
    expect(retry.response).toMatch(/^250 /);
    expect(recipientsOf(local.messages)).toEqual([["alice@local.test"]]); // not stored a second time
    expect(recipientsOf(relay.messages)).toEqual([["bob@remote.test"]]);

    const [refused, queued] = ended.filter((event) => event.outcome !== "abandoned");
    expect(refused?.outcome).toBe("refused");
    expect(refused?.alreadyStored).toBeUndefined();
    expect(queued?.outcome).toBe("queued");
    // Queued whole, once: the refused first attempt reported nothing stored.
    expect(refused?.groups).toEqual([]);
    expect(queued?.groups.map((g) => [g.route, g.recipients.map((r) => r.address)])).toEqual([
      ["local", ["alice@local.test"]],
      ["relay", ["bob@remote.test"]],
    ]);
    expect(queued?.alreadyStored?.map((g) => [g.route, g.recipients.map((r) => r.address)])).toEqual([
      ["local", ["alice@local.test"]],
    ]);
    const skipped = server.logs.find((line) => line.msg.startsWith("retry: route groups stored by an earlier attempt"));
    expect(skipped?.alreadyStored).toEqual([{ route: "local", recipients: 1 }]);

    // Once the rest is stored the transaction is forgotten: sent again, it is a new message.
    await server.send({ to, raw });
    expect(local.messages).toHaveLength(2);
    expect(relay.messages).toHaveLength(2);
  });

  it("remembers across several failed retries, and a refusal before anything is stored remembers nothing", async () => {
    const relay = flakyRelay(3);
    const { server, local } = await start(relay);
    const raw = buildMessage();
    const to = ["alice@local.test", "bob@remote.test"];
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await sendError(server.send({ to, raw }))).responseCode).toBe(451);
    }
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(1);
    expect(relay.messages).toHaveLength(1);

    // The failing group first: nothing stored before it failed, nothing to remember.
    relay.state.failures = 1;
    const relayFirst = ["bob@remote.test", "alice@local.test"];
    const other = buildMessage();
    expect((await sendError(server.send({ to: relayFirst, raw: other }))).responseCode).toBe(451);
    expect(local.messages).toHaveLength(1);
    expect((await server.send({ to: relayFirst, raw: other })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(2);
  });

  it("remembers after a store that throws (451), not after a 5xx the client will not retry", async () => {
    const relay = flakyRelay(1, "throw");
    const { server, local } = await start(relay);
    const to = ["alice@local.test", "bob@remote.test"];
    const raw = buildMessage();
    expect((await sendError(server.send({ to, raw }))).response).toMatch(/^451 4\.3\.0 /);
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect([local.messages.length, relay.messages.length]).toEqual([1, 1]);

    Object.assign(relay.state, { failures: 1, how: "reject" });
    const refused = buildMessage();
    expect((await sendError(server.send({ to, raw: refused }))).responseCode).toBe(550);
    expect((await server.send({ to, raw: refused })).response).toMatch(/^250 /);
    expect([local.messages.length, relay.messages.length]).toEqual([3, 2]);
  });

  it("skips nothing when the bytes or the envelope differ (same sender and size)", async () => {
    const relay = flakyRelay(1);
    const { server, local } = await start(relay);
    const to = ["alice@local.test", "bob@remote.test"];
    const fixed = { messageId: "<fixed@example.org>", date: new Date("2024-05-01T10:00:00Z") };
    const raw = buildMessage({ ...fixed, subject: "version A" });
    const sameSize = buildMessage({ ...fixed, subject: "version B" });
    expect(sameSize.length).toBe(raw.length);

    expect((await sendError(server.send({ to, raw }))).responseCode).toBe(451);
    expect(local.messages).toHaveLength(1);

    // Other bytes of the same size: hashed (the sender and size match) and found different.
    expect((await server.send({ to, raw: sameSize })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(2);
    // The same bytes to other recipients, or from another sender: a transaction of its own.
    await server.send({ to: ["carol@local.test", "bob@remote.test"], raw });
    await server.send({ to, raw, from: "other@example.org" });
    expect(recipientsOf(local.messages)).toEqual([
      ["alice@local.test"],
      ["alice@local.test"],
      ["carol@local.test"],
      ["alice@local.test"],
    ]);

    // The retry proper still finds what its first attempt stored.
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(4);
    expect(relay.messages).toHaveLength(4);
  });

  it("fingerprints a message spooled to disk from the spool file", async () => {
    const relay = flakyRelay(1);
    const { server, local } = await start(relay, { memoryThreshold: "1KB" });
    const to = ["alice@local.test", "bob@remote.test"];
    const raw = buildMessage({ text: bulkyText(200_000) });
    expect((await sendError(server.send({ to, raw }))).responseCode).toBe(451);
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect([local.messages.length, relay.messages.length]).toEqual([1, 1]);
    expect(local.messages[0]!.bytes.includes(raw)).toBe(true);
  });

  it("remembers no transaction with more stored recipients than limits.routeMemory.maxEntries", async () => {
    const relay = flakyRelay(1);
    const { server, local } = await start(relay, { routeMemory: { maxEntries: 1 } });
    const to = ["alice@local.test", "carol@local.test", "bob@remote.test"];
    const raw = buildMessage();
    expect((await sendError(server.send({ to, raw }))).responseCode).toBe(451);
    const warned = server.logs.find((line) => line.msg.startsWith("route memory: more recipients stored than"));
    expect(warned?.recipients).toBe(2);
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(2); // past the bound: a duplicate, never a loss
  });

  it("stores every group again when the memory is off (limits.routeMemory.maxEntries 0)", async () => {
    const relay = flakyRelay(1);
    const { server, local } = await start(relay, { routeMemory: { maxEntries: 0 } });
    const raw = buildMessage();
    const to = ["alice@local.test", "bob@remote.test"];
    expect((await sendError(server.send({ to, raw }))).responseCode).toBe(451);
    expect((await server.send({ to, raw })).response).toMatch(/^250 /);
    expect(local.messages).toHaveLength(2); // the duplicate the memory prevents
    expect(relay.messages).toHaveLength(1);
  });
});

describe("RouteMemory", () => {
  const stored = (...keys: string[]) => new Set(keys);
  const candidate = RouteMemory.candidateKey("a@example.org", 100);

  it("forgets the oldest transactions past maxEntries recipients", () => {
    const memory = new RouteMemory({ maxEntries: 3, ttlMs: 60_000 });
    expect(memory.remember("one", candidate, stored("local\na@x"), 0)).toBe(true);
    expect(memory.remember("two", candidate, stored("local\nb@x", "local\nc@x"), 1)).toBe(true);
    expect(memory.recipients).toBe(3);
    expect(memory.remember("three", candidate, stored("local\nd@x"), 2)).toBe(true);
    expect(memory.recall("one", 3)).toBeUndefined();
    expect(memory.recall("two", 3)).toEqual(stored("local\nb@x", "local\nc@x"));
    expect([memory.size, memory.recipients]).toEqual([2, 3]);
    // One transaction with more recipients than the bound is not remembered at all.
    expect(memory.remember("huge", candidate, stored("1", "2", "3", "4"), 4)).toBe(false);
    expect(memory.recall("huge", 5)).toBeUndefined();
    expect(memory.recipients).toBe(3);
  });

  it("forgets a transaction ttlMs after its last failed attempt", () => {
    const memory = new RouteMemory({ maxEntries: 10, ttlMs: 1000 });
    memory.remember("one", candidate, stored("local\na@x"), 0);
    expect(memory.mightHave(candidate, 999)).toBe(true);
    memory.remember("one", candidate, stored("local\na@x"), 900); // failed again: remembered anew
    expect(memory.recall("one", 1500)).toBeDefined();
    expect(memory.mightHave(candidate, 1900)).toBe(false);
    expect([memory.size, memory.recipients]).toEqual([0, 0]);
  });

  it("says a candidate is worth hashing only while a transaction with its sender and size is remembered", () => {
    const memory = new RouteMemory({ maxEntries: 10, ttlMs: 1000 });
    expect(memory.mightHave(candidate, 0)).toBe(false);
    memory.remember("one", candidate, stored("local\na@x"), 0);
    memory.remember("two", candidate, stored("local\nb@x"), 0);
    expect(memory.mightHave(RouteMemory.candidateKey("A@Example.org", 100), 1)).toBe(true);
    expect(memory.mightHave(RouteMemory.candidateKey("a@example.org", 101), 1)).toBe(false);
    memory.forget("one");
    expect(memory.mightHave(candidate, 1)).toBe(true);
    memory.forget("two");
    expect(memory.mightHave(candidate, 1)).toBe(false);
  });

  it("fingerprints the sender, the recipients with their routes (in any order) and the bytes", async () => {
    const envelope: TransactionEnvelope = {
      sender: "a@example.org",
      recipients: [
        { address: "alice@local.test", route: "local" },
        { address: "bob@remote.test", route: "relay" },
      ],
    };
    const of = (env: TransactionEnvelope, bytes = "Subject: x\r\n\r\nbody\r\n") =>
      transactionFingerprint(env, Readable.from([Buffer.from(bytes)]));
    const base = await of(envelope);
    expect(await of({ ...envelope, recipients: [...envelope.recipients].reverse() })).toBe(base);
    expect(await of({ ...envelope, sender: "A@EXAMPLE.ORG" })).toBe(base);
    expect(await of(envelope, "Subject: y\r\n\r\nbody\r\n")).not.toBe(base);
    expect(await of({ ...envelope, sender: "b@example.org" })).not.toBe(base);
    expect(
      await of({ ...envelope, recipients: [envelope.recipients[0]!, { address: "bob@remote.test", route: "local" }] }),
    ).not.toBe(base);
    expect(await of({ ...envelope, recipients: [envelope.recipients[0]!] })).not.toBe(base);
    expect(storedKey("local", "Alice@Local.test")).toBe(storedKey("local", "alice@local.test"));
  });
});
