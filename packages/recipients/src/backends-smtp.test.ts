// The plugin over real SMTP against each lookup backend's real server (PostgreSQL, slapd, Dovecot
// auth): who exists, subaddresses, lists held in the directory, and the directory going down
// mid-session — 451 4.3.0 for everyone it would have to ask, never 550 for a known user, never 250
// for an unknown one; postmaster@ still 250; answers again once it is back.
import { memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import recipients from "./index.ts";
import { createSrs } from "./srs.ts";
import { backends, type RunningBackend } from "./test-backends.ts";
import { rcpt, recipientsOf, send } from "./test-smtp.ts";

const secrets = ["backend-test-secret"];

for (const backend of backends) {
  describe(`the plugin with ${backend.name} lookups over SMTP`, () => {
    let running: RunningBackend;
    beforeAll(async () => {
      running = await backend.start();
    });
    afterAll(async () => {
      await running?.stop();
    });

    async function serve(cache: boolean): Promise<{ server: TestServer; queue: ReturnType<typeof memoryQueue> }> {
      const queue = memoryQueue();
      const server = await startTestServer({
        plugins: [
          recipients({
            domains: ["example.com"],
            postmaster: "alice@example.com",
            lookups: running.lookups({ cache }),
            srs: { domain: "fwd.example.com", secrets },
          }),
          queue.plugin,
        ],
      });
      return { server, queue };
    }

    it("accepts who exists (subaddress too), refuses who does not, expands a list it holds", async () => {
      const { server, queue } = await serve(true);
      try {
        expect(
          await rcpt(server, ["Alice@Example.com", "bob+x@example.com", "nobody@example.com", "team@example.com"]),
        ).toEqual([
          "250 2.1.5",
          "250 2.1.5",
          running.holdsLists ? "550 5.1.1" : "550 5.1.1",
          running.holdsLists ? "250 2.1.5" : "550 5.1.1",
        ]);
        await send(server, ["bob+x@example.com", ...(running.holdsLists ? ["team@example.com"] : [])]);
        const expected: ReturnType<typeof recipientsOf> = [
          { address: "bob@example.com", route: "local", original: "bob+x@example.com", detail: "x", sender: undefined },
        ];
        if (running.holdsLists) {
          expected.push(
            {
              address: "alice@example.com",
              route: "local",
              original: "team@example.com",
              detail: undefined,
              sender: undefined,
            },
            {
              address: "dave@elsewhere.example",
              route: "forward",
              original: "team@example.com",
              detail: undefined,
              sender: createSrs({ domain: "fwd.example.com", secrets }).forward("sender@origin.example"),
            },
          );
        }
        expect(recipientsOf(queue.messages)).toEqual(expected);
      } finally {
        await server.stop();
      }
    });

    it("answers 451 4.3.0 for everyone while the directory is down mid-session, postmaster@ 250, then recovers", async () => {
      const { server } = await serve(false);
      try {
        const replies = await rcpt(
          server,
          [
            "alice@example.com",
            "nobody@example.com",
            "alice@example.com",
            "nobody@example.com",
            "postmaster@example.com",
          ],
          { before: { index: 2, run: () => running.down() } },
        );
        expect(replies).toEqual(["250 2.1.5", "550 5.1.1", "451 4.3.0", "451 4.3.0", "250 2.1.5"]);
        await running.up();
        expect(await rcpt(server, ["alice@example.com", "nobody@example.com"])).toEqual(["250 2.1.5", "550 5.1.1"]);
      } finally {
        await running.up();
        await server.stop();
      }
    });

    it("behind its cache, keeps accepting a known user while the directory is down; a new name gets 451", async () => {
      const { server } = await serve(true);
      try {
        expect(await rcpt(server, ["bob@example.com"])).toEqual(["250 2.1.5"]);
        await running.down();
        expect(await rcpt(server, ["bob@example.com", "carol@example.com"])).toEqual(["250 2.1.5", "451 4.3.0"]);
      } finally {
        await running.up();
        await server.stop();
      }
    });
  });
}
