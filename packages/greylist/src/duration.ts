// Durations in options: "5m", "2h", "36d", "90s", or a number of seconds — the units operators
// think greylisting in (the same notation @postern/rate-limit's windows use).
const unitSeconds: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Milliseconds, or undefined when it is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  if (typeof value !== "string") return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/i.exec(value);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * unitSeconds[match[2]!.toLowerCase()]! * 1000);
}

/** "4 minutes", "30 seconds", "2 hours": how long until a retry, rounded up, for a reply. */
export function humanDuration(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 120) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return `${minutes} minutes`;
  return `${Math.ceil(minutes / 60)} hours`;
}
