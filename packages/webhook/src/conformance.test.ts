// The storage conformance suite against a real HTTP endpoint (raw format): the store is "durable"
// once the application answered 2xx, and a connection cut part-way through the body is a failure.
import { describeStoreConformance } from "@postern/testing/vitest";
import webhook from "./index.ts";
import { startReceiver } from "./test-receiver.ts";

const secret = "conformance-secret-0123456789";

describeStoreConformance("@postern/webhook (raw)", {
  // The endpoint is a remote service: a failure is a network failure, 451 4.4.x.
  failure: { code: 451, status: /^4\.4\.\d$/ },
  async createStore() {
    const receiver = await startReceiver({ secret });
    return {
      plugin: webhook({ url: receiver.url, format: "raw", secret, timeoutMs: 120_000 }),
      read: (recipient) => receiver.read(recipient),
      async breakStorage() {
        receiver.mode = { kind: "cut", afterBytes: 256 * 1024 };
      },
      async restore() {
        receiver.mode = { kind: "ok" };
      },
      cleanup: () => receiver.close(),
    };
  },
});
