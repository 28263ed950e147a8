// UTC days as "YYYY-MM-DD" strings: the unit every daily report is counted and sent in.

/** The UTC day ("YYYY-MM-DD") an instant falls on. */
export function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

/** The UTC day `days` after `day` (negative: before). */
export function addDays(day: string, days: number): string {
  return utcDay(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000);
}

/** The first and last second of a UTC day, in epoch seconds (the begin and end of its report). */
export function dayRange(day: string): { begin: number; end: number } {
  const begin = Date.parse(`${day}T00:00:00Z`) / 1000;
  return { begin, end: begin + 86_399 };
}
