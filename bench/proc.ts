// Owns what the harness reads from Linux's /proc about a server process group: resident memory
// (VmRSS) and CPU time (user + system, every thread). Each server child leads its own process
// group, so "the server" includes its cluster workers or Python threads.

import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on every Linux we target). */
const TICKS_PER_SECOND = 100;

/** Resident set size of one process in bytes, or NaN if it is gone. */
function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Pids whose process group is `pgid` (the leader and everything it forked). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat && stat.pgrp === pgid) members.push(Number(entry));
  }
  return members;
}

/** CPU seconds (user + system) used so far by every process in the group `pgid`. */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const pid of groupMembers(pgid)) {
    const stat = readStat(pid);
    if (stat) ticks += stat.utime + stat.stime;
  }
  return ticks / TICKS_PER_SECOND;
}

/** Resident memory summed over the group `pgid`, in bytes. */
export function groupRssBytes(pgid: number): number {
  let total = 0;
  for (const pid of groupMembers(pgid)) {
    const rss = rssBytes(pid);
    if (Number.isFinite(rss)) total += rss;
  }
  return total;
}

interface Stat {
  pgrp: number;
  utime: number;
  stime: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may hold spaces: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
  return { pgrp: Number(fields[2]), utime: Number(fields[11]), stime: Number(fields[12]) };
}
