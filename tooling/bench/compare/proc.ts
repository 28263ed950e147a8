// Memory of a server as the kernel counts it (/proc), so every server — Node, Haraka, Postfix's
// several processes — is measured the same way from outside.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

function statusField(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0; // the process has exited
  }
}

/** The process and all its descendants (Postfix's master forks smtpd, cleanup, qmgr, virtual …). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name may contain spaces and parentheses; the fields after the last ")" don't.
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(parent) ?? [];
      list.push(Number(entry));
      children.set(parent, list);
    } catch {
      // exited while we looked
    }
  }
  const tree = [root];
  for (let index = 0; index < tree.length; index++) tree.push(...(children.get(tree[index]!) ?? []));
  return tree;
}

export function rss(pid: number): number {
  return statusField(pid, "VmRSS");
}

/** Peak RSS since start or since resetPeak(). */
export function peakRss(pid: number): number {
  return statusField(pid, "VmHWM");
}

/** Resets the kernel's peak-RSS mark (Linux ≥ 4.0; needs the same user or root). */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Proportional set size: RSS with each shared page divided among the processes sharing it, so
 * Postfix's processes (which share their libraries and much of their memory) can be added up.
 */
export function pss(pid: number): number {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const match = /^Pss:\s+(\d+) kB/m.exec(rollup);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Samples the summed PSS of a process tree until stopped; for multi-process servers, whose peak
 * no single VmHWM holds. The tree is re-read every `treeEveryMs` (forks are rarer than samples).
 */
export function sampleTreeRss(root: number, everyMs = 250, treeEveryMs = 500): () => number {
  let tree = processTree(root);
  let peak = 0;
  let lastTree = Date.now();
  const sample = () => {
    if (Date.now() - lastTree > treeEveryMs) {
      tree = processTree(root);
      lastTree = Date.now();
    }
    peak = Math.max(
      peak,
      tree.reduce((sum, pid) => sum + pss(pid), 0),
    );
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return () => {
    clearInterval(timer);
    sample();
    return peak;
  };
}

const ticksPerSecond = 100; // USER_HZ, fixed at 100 on Linux for /proc

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may contain spaces and parentheses.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system) the server has used: the process, its live descendants, and the
 * children it has reaped (Postfix's smtpd processes come and go). Wall-clock rates move with the
 * machine's load; CPU time per message moves much less.
 */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const [index, pid] of processTree(root).entries()) {
    const fields = statFields(pid);
    if (!fields) continue;
    // utime, stime are fields 14 and 15 of /proc/pid/stat; cutime, cstime 16 and 17 (1-based,
    // counting pid and comm, which are not in `fields`).
    ticks += Number(fields[11]) + Number(fields[12]);
    if (index === 0) ticks += Number(fields[13]) + Number(fields[14]);
  }
  return ticks / ticksPerSecond;
}

/**
 * CPU seconds (user + system) of every PostgreSQL process on the machine, the children the
 * postmaster has reaped included: the database's share of a row that queues in it, which
 * cpuSeconds() of the server does not see (the backends are the postmaster's children).
 */
export function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
    } catch {
      continue; // exited while we looked
    }
    if (comm !== "postgres") continue;
    const fields = statFields(Number(entry));
    if (fields) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / ticksPerSecond;
}

/** The machine's CPU time so far, busy and idle (idle + iowait), in ticks of all CPUs, from /proc/stat. */
export function machineTicks(): { busy: number; idle: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return { busy: user! + nice! + system! + irq! + softirq! + steal!, idle: idle! + iowait! };
}

/** The share of the machine's CPU time that was idle between two machineTicks() readings. */
export function idleShare(before: { busy: number; idle: number }, after: { busy: number; idle: number }): number {
  const idle = after.idle - before.idle;
  const total = idle + after.busy - before.busy;
  return total > 0 ? idle / total : Number.NaN;
}
