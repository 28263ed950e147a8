// Checking a connection out of the pool safely. A checked-out pg client has no 'error' listener of
// the pool's; if the server ends its session (restart, failover, pg_terminate_backend) between or
// after queries, the client emits 'error' and, unheard, that would crash the whole process. Here
// such an error is kept, the connection is discarded instead of returned, and the caller's work
// fails with the error (PostgreSQL rolls back an open transaction of a dead session by itself).
import type pg from "pg";

export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error) => {
    lost ??= error;
  };
  client.on("error", onError);
  try {
    return await work(client);
  } catch (error) {
    lost ??= error as Error;
    throw error;
  } finally {
    // Leave the listener on a discarded client: it may still report the socket closing.
    if (!lost) client.off("error", onError);
    client.release(lost);
  }
}
