// Locks on files that cannot outlive their owner (issue 18). Placeholder signature: the
// reliability work replaces this module with the real implementation and its tests.
export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface FileLockOptions {
  /** Wait this long for a lock held by a live owner before failing (0: fail at once). */
  waitMs?: number;
}

export async function acquireFileLock(path: string, _options: FileLockOptions = {}): Promise<FileLock> {
  throw new Error(`acquireFileLock(${path}) is not implemented yet`);
}
