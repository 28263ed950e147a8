// Durations in the replies greylisting sends: how long a sender's postmaster should wait, in words.
// (Durations in options are core's `durationSchema`: "5m", "2h", "36d" or a number of seconds.)

/** "4 minutes", "30 seconds", "2 hours": how long until a retry, rounded up, for a reply. */
export function humanDuration(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 120) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return `${minutes} minutes`;
  return `${Math.ceil(minutes / 60)} hours`;
}
