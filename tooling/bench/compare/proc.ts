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
 * Samples the summed RSS of a process tree until stopped; for multi-process servers, whose peak
 * no single VmHWM holds. The tree is re-read every `treeEveryMs` (forks are rarer than samples).
 */
export function sampleTreeRss(root: number, everyMs = 100, treeEveryMs = 500): () => number {
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
      tree.reduce((sum, pid) => sum + rss(pid), 0),
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
