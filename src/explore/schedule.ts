// Schedule strings: which thread took each step, run-length encoded by thread name, e.g.
// "main:14,revoker:9,main:6". A schedule replays exactly: the same scenario, kernel and mutant give
// the same steps.
export type Schedule = string[];

export function encodeSchedule(s: Schedule): string {
  const parts: string[] = [];
  let i = 0;
  while (i < s.length) {
    let j = i;
    while (j < s.length && s[j] === s[i]) j++;
    parts.push(`${s[i]}:${j - i}`);
    i = j;
  }
  return parts.join(',');
}

export class ScheduleError extends Error {}

export function decodeSchedule(str: string): Schedule {
  const out: Schedule = [];
  if (!str.trim()) return out;
  for (const part of str.split(',')) {
    const m = /^\s*([^:,\s]+):(\d+)\s*$/.exec(part);
    if (!m) throw new ScheduleError(`schedule: "${part}" is not THREAD:COUNT`);
    for (let n = Number(m[2]); n > 0; n--) out.push(m[1]);
  }
  return out;
}

/** Preemptions: switches away from a thread that could have gone on. */
export function countPreemptions(steps: Array<{ task: string; enabled: string[] }>): number {
  let n = 0;
  for (let i = 1; i < steps.length; i++) if (steps[i].task !== steps[i - 1].task && steps[i].enabled.includes(steps[i - 1].task)) n++;
  return n;
}
