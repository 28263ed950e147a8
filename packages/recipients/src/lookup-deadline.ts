// Every backend query runs against a deadline: a directory that hangs answers tempfail after
// `timeoutMs` instead of holding the SMTP session until core's hook deadline.
import { DirectoryError } from "./directory-error.ts";

export async function withDeadline<T>(backend: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DirectoryError("RECIPIENTS_LOOKUP_TIMEOUT", backend, `no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
