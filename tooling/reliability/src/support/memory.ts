// RSS readings that mean something: a full collection first, so garbage waiting to be collected
// is not counted as memory the server holds.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = () => void;

function obtainGc(): Gc | undefined {
  const existing = (globalThis as { gc?: Gc }).gc;
  if (existing) return existing;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as Gc;
  } catch {
    return undefined;
  }
}

const gc = obtainGc();

/** RSS of this process after two full collections and a moment for freed buffers to go back. */
export async function settledRss(): Promise<number> {
  for (let round = 0; round < 2; round++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().rss;
}

/** JS heap in use after the same collections: what the process's own objects hold. */
export async function settledHeap(): Promise<number> {
  await settledRss();
  return process.memoryUsage().heapUsed;
}

export const megabytes = (bytes: number): number => bytes / 1024 / 1024;
