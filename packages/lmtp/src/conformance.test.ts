// The storage conformance suite against @postern/lmtp handing mail to a real Dovecot LMTP server.
// What is "stored" is what Dovecot wrote into the Maildir (minus the Return-Path it adds on top);
// a failure part-way is the connection to Dovecot cut in the middle of the message.
import { describeStoreConformance } from "@postern/testing/vitest";
import { afterAll } from "vitest";
import lmtp from "./index.ts";
import { type Dovecot, startDovecot, withoutReturnPath } from "./test-dovecot.ts";
import { type CuttingProxy, startCuttingProxy } from "./test-proxy.ts";

const recipients = ["alice@example.test", "bob@example.test", "carol@example.test"] as const;
let shared: Promise<{ dovecot: Dovecot; proxy: CuttingProxy }> | undefined;

function dovecotOnce() {
  shared ??= startDovecot({ users: recipients.map((address) => ({ address })) }).then(async (dovecot) => ({
    dovecot,
    proxy: await startCuttingProxy(dovecot.lmtpPort),
  }));
  return shared;
}

afterAll(async () => {
  if (!shared) return;
  const { dovecot, proxy } = await shared;
  await proxy.close();
  await dovecot.stop();
});

describeStoreConformance("@postern/lmtp → Dovecot", {
  recipients,
  // The LMTP server is another service: a broken connection is a network failure, 451 4.4.x.
  failure: { code: 451, status: /^4\.4\.\d$/ },
  async createStore() {
    const { dovecot, proxy } = await dovecotOnce();
    await dovecot.clearMail();
    proxy.cutAfterBytes = undefined;
    return {
      plugin: lmtp({ host: "127.0.0.1", port: proxy.port }),
      async read(recipient) {
        return (await dovecot.readMaildir(recipient)).map(withoutReturnPath);
      },
      async breakStorage() {
        proxy.cutAfterBytes = 256 * 1024;
      },
      async restore() {
        proxy.cutAfterBytes = undefined;
      },
      async cleanup() {
        await dovecot.clearMail();
      },
    };
  },
});
