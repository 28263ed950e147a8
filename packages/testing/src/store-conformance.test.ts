// Runs the storage conformance suite against a small reference store (files renamed into place),
// and shows that the checks catch stores that break the contract.
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accept, type Hooks, type Plugin } from "@postern/core";
import { describe, expect, it } from "vitest";
import { memoryQueue } from "./plugins.ts";
import { describeStoreConformance } from "./store-conformance.ts";
import { conformanceContext, type StoreUnderTest, storeConformanceChecks } from "./store-conformance-checks.ts";

/** Writes each message to tmp/, fsyncs, then renames it into <recipient>/ — like Maildir. */
function referenceStore(root: string, state: { broken: boolean }): Plugin {
  return {
    name: "reference-store",
    hooks: {
      async queue(_transaction, message, group) {
        if (group.route !== "local") return undefined;
        await mkdir(join(root, "tmp"), { recursive: true });
        const tmp = join(root, "tmp", `${Date.now()}-${Math.random().toString(36).slice(2)}`);
        const file = await open(tmp, "w");
        try {
          let written = 0;
          for await (const chunk of message.stream()) {
            await file.write(chunk as Buffer);
            written += (chunk as Buffer).length;
            if (state.broken && written > 64 * 1024) throw new Error("disk broke part-way");
          }
          await file.sync();
        } catch (error) {
          await file.close();
          await rm(tmp, { force: true });
          throw error;
        }
        await file.close();
        for (const [index, recipient] of group.recipients.entries()) {
          const dir = join(root, recipient.address);
          await mkdir(dir, { recursive: true });
          const target = join(dir, `${Date.now()}-${Math.random().toString(36).slice(2)}`);
          if (index === group.recipients.length - 1) await rename(tmp, target);
          else await copyFile(tmp, target);
        }
        return accept();
      },
    },
  };
}

async function createReference(): Promise<StoreUnderTest> {
  const root = await mkdtemp(join(tmpdir(), "postern-reference-store-"));
  const state = { broken: false };
  return {
    plugin: referenceStore(root, state),
    async read(recipient) {
      const dir = join(root, recipient);
      const names = await readdir(dir).catch(() => [] as string[]);
      return Promise.all(names.sort().map((name) => readFile(join(dir, name))));
    },
    async breakStorage() {
      state.broken = true;
    },
    async restore() {
      state.broken = false;
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

describeStoreConformance("reference file store", { createStore: createReference });

function check(title: string) {
  const found = storeConformanceChecks.find((candidate) => candidate.title.startsWith(title));
  assert.ok(found, title);
  return found;
}

describe("the conformance checks fail stores that break the contract", () => {
  it("a store that keeps the whole message in memory fails the large-message check", async () => {
    const held = memoryQueue();
    const context = conformanceContext({
      largeMessageBytes: 12 * 1024 * 1024,
      async createStore() {
        return {
          plugin: held.plugin,
          async read() {
            return held.messages.map((message) => message.bytes);
          },
          async breakStorage() {},
          async restore() {},
          async cleanup() {},
        };
      },
    });
    await expect(check("streams a large message").run(context)).rejects.toThrow(/seems to buffer it/);
  }, 120_000);

  it("a store that acknowledges before writing fails the durability check", async () => {
    const written: Buffer[] = [];
    const eager: Plugin = {
      name: "eager-store",
      hooks: {
        queue(_transaction, message) {
          // Answers at once and writes later: the 250 goes out before the message is stored.
          const chunks: Buffer[] = [];
          message.stream().on("data", (chunk: Buffer) => chunks.push(chunk));
          setTimeout(() => written.push(Buffer.concat(chunks)), 500);
          return accept();
        },
      },
    };
    const context = conformanceContext({
      async createStore() {
        return {
          plugin: eager,
          read: async () => [...written],
          async breakStorage() {},
          async restore() {},
          async cleanup() {},
        };
      },
    });
    await expect(check("answers 250 only once").run(context)).rejects.toThrow(/not readable when the 250/);
  });

  it("a store whose failed write stays visible fails the failure check", async () => {
    const context = conformanceContext({
      async createStore() {
        const store = await createReference();
        let broken = false;
        const leaky: Plugin = {
          name: "leaky-store",
          hooks: {
            async queue(transaction, message, group, context) {
              const queue = store.plugin.hooks?.queue as Hooks["queue"];
              const verdict = await queue(transaction, message, group, context);
              if (broken) throw new Error("failed after writing");
              return verdict;
            },
          },
        };
        return {
          ...store,
          plugin: leaky,
          async breakStorage() {
            broken = true;
          },
          async restore() {
            broken = false;
          },
        };
      },
    });
    await expect(check("a failure part-way").run(context)).rejects.toThrow(/sees a message whose write failed/);
  });
});
