// The --workers option of `postern start` and `postern check`.
import { availableParallelism } from "node:os";
import { UsageError } from "../usage-error.ts";

/** More workers than this is a typo, not a machine. */
const maxWorkers = 256;

/** --workers: a count, or "auto" for one per CPU the process may use. */
export function workerCountFrom(text: string | undefined): number {
  if (text === undefined) return 1;
  if (text === "auto") return availableParallelism();
  const count = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(count >= 1 && count <= maxWorkers)) {
    throw new UsageError(
      `--workers: expected a number of processes from 1 to ${maxWorkers}, or "auto" (got "${text}")`,
    );
  }
  return count;
}
