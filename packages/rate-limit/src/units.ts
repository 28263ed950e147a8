// Human units in limits: windows ("30s", "5m", "1h", "1d", "day"), rates ("100/1h", "5/1m") and
// byte rates ("500MB/1d"). Each parser returns undefined on bad input so the option schema can
// report one line naming the key and the expected form. (Tarpit delays are core's `duration`.)
import { byteSize } from "@postern/core";

/** A count allowed per window. */
export interface Rate {
  /** How many per window (messages, recipients, connections, failures or bytes). */
  count: number;
  /** Window length in whole seconds (rate-limiter-flexible counts in seconds). */
  windowSeconds: number;
}

const unitSeconds: Record<string, number> = {
  s: 1,
  sec: 1,
  second: 1,
  seconds: 1,
  m: 60,
  min: 60,
  minute: 60,
  minutes: 60,
  h: 3600,
  hour: 3600,
  hours: 3600,
  d: 86_400,
  day: 86_400,
  days: 86_400,
};

/** "1h", "15m", "30s", "2d", "h" (one hour) → seconds. */
export function parseWindow(text: string): number | undefined {
  const match = /^\s*(\d+)?\s*([a-z]+)\s*$/i.exec(text);
  if (!match) return undefined;
  const factor = unitSeconds[match[2]!.toLowerCase()];
  if (factor === undefined) return undefined;
  const amount = match[1] === undefined ? 1 : Number(match[1]);
  return amount > 0 ? amount * factor : undefined;
}

/** "100/1h" → { count: 100, windowSeconds: 3600 }. */
export function parseRate(text: string): Rate | undefined {
  const match = /^\s*(\d+)\s*\/\s*(.+)$/.exec(text);
  if (!match) return undefined;
  const count = Number(match[1]);
  const windowSeconds = parseWindow(match[2]!);
  if (!Number.isSafeInteger(count) || count < 1 || windowSeconds === undefined) return undefined;
  return { count, windowSeconds };
}

/** "500MB/1d" or "1048576/1h" → bytes per window. */
export function parseByteRate(text: string): Rate | undefined {
  const slash = text.lastIndexOf("/");
  if (slash <= 0) return undefined;
  const size = byteSize.safeParse(
    /^\s*\d+\s*$/.test(text.slice(0, slash)) ? Number(text.slice(0, slash)) : text.slice(0, slash),
  );
  const windowSeconds = parseWindow(text.slice(slash + 1));
  if (!size.success || windowSeconds === undefined || size.data < 1) return undefined;
  return { count: size.data, windowSeconds };
}
