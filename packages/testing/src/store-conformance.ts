// The storage conformance suite for vitest: one `it` per rule of the storage contract. Stores in
// this repository and third-party stores run the same suite:
//
//   describeStoreConformance("my-store", {
//     async createStore() {
//       const dir = await mkdtemp(join(tmpdir(), "my-store-"));
//       return {
//         plugin: myStore({ dir }),
//         read: (recipient) => readMyStore(dir, recipient),
//         breakStorage: () => makeNextWriteFail(dir),
//         restore: () => undoFailure(dir),
//         cleanup: () => rm(dir, { recursive: true, force: true }),
//       };
//     },
//   });
import { describe, it } from "vitest";
import {
  conformanceContext,
  type StoreConformanceOptions,
  storeConformanceChecks,
} from "./store-conformance-checks.ts";

export type { StoreConformanceOptions, StoreUnderTest } from "./store-conformance-checks.ts";

/** Registers the storage conformance suite for one store as a vitest `describe` block. */
export function describeStoreConformance(name: string, options: StoreConformanceOptions): void {
  const context = conformanceContext(options);
  describe(`storage conformance: ${name}`, () => {
    for (const check of storeConformanceChecks) {
      it(check.title, () => check.run(context), check.timeoutMs);
    }
  });
}
