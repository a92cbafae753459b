// Exhaustive exploration with dynamic partial-order reduction (Flanagan and Godefroid, POPL 2005)
// and sleep sets: only orders of dependent steps are permuted. Every execution re-runs the scenario
// from the start under a schedule. On top: lock-aware races (read-only mutex sections), atomic
// blocks (movers.ts) and state caching (state.ts, fpstore.ts); and the split into independent jobs
// that workers (parallel.ts) and shards (shard.ts) run.
import { dependent, ev, type Acc, type Ev, type Span } from '../kernel/sched/sched.ts';
import type { Scenario } from '../scenario/loader.ts';
import { Execution, type ExecOptions } from './execution.ts';
import { MemFpStore, type FingerprintStore, type StateEntry } from './fpstore.ts';
import { AccessLog, extend, type Mover } from './movers.ts';
import { RaceIndex } from './raceindex.ts';
import { SharedStates, sharedStoreBuffers } from './sharedstore.ts';
import { rng } from './pct.ts';
import { DEFAULT_MAX_DEPTH, notRun, preemptionsOf, type Counterexample, type ExploreOptions, type ExploreResult, type Progress } from './result.ts';
import { callCollapse, cloneThread, Hasher, kernelHash, observe, taskAfter, threadStart, type ThreadFp } from './state.ts';

/**
 * A DPOR job: the subtree below a fixed prefix of choices, with the sleep set its root starts with.
 * Splitting at depth D (every awake choice at depths < D is explored, which only adds backtrack
 * points DPOR would have pruned) makes the jobs independent, so they can run on several workers
 * and give the same executions as running them one after another.
 */
export interface DporJob {
  prefix: number[];
  sleep: number[];
}

/** A summary entry: the task that took a step, and the step's event (this search's id for it). */
const summaryCode = (task: number, evId: number) => task * 1048576 + evId;
const taskOf = (code: number) => Math.floor(code / 1048576);
const evIdOf = (code: number) => code % 1048576;

/** The empty list of open read-only sections, shared. */
const NO_HELD: DporNode['held'] = [];

/** Vector clocks indexed by task; entries are step numbers (-1: nothing). */
type Clock = number[];
const join = (a: Clock, b: Clock) => {
  for (let i = 0; i < b.length; i++) if ((a[i] ?? -1) < b[i]) a[i] = b[i];
};

interface DporNode {
  enabled: number[];
  pending: Array<Ev | null>;
  backtrack: Set<number>;
  done: Set<number>;
  sleep: Map<number, Ev>;
  chosen: number;
  ev: Ev | null;
  task: number;
  clock: Clock;
  /** read-only mutex sections open before this step: [holder, mutex, index of its mutex_lock] */
  held: Array<[number, string, number]>;
  /** state caching: the threads' fingerprints before this step, the state's fingerprint, its sleep set when first reached, the events below it */
  threads?: ThreadFp[];
  fp?: string;
  sleep0?: number[];
  summary?: Set<number>;
  /** atomic blocks: the node where the block this step continues began (no other choice here) */
  forcedFrom?: number;
  /** atomic blocks: how the open block's thread's step here moves (classified once) */
  blkMover?: Mover;
  /** atomic blocks: the block open after this node's step */
  blkAfter?: Block | null;
}

/** An atomic block in progress: its thread, its phase (before or after its commit step), its first node. */
interface Block {
  task: number;
  phase: 0 | 1;
  start: number;
}

export function exploreDpor(scn: Scenario, opts: ExploreOptions & { job?: DporJob } = {}): ExploreResult {
  // a shared store gets this search's states once it has ended complete (and, with atomic
  // blocks, with no assumption contradicted): only then do they stand for finished explorations
  const out: Finished = {};
  if (!opts.atomic) {
    const r = exploreOnce(scn, opts, null, out);
    if (r.complete) out.publish?.();
    return r;
  }
  // the reductions rely on what the log has seen; a contradiction starts the search again
  const t0 = Date.now();
  const log = opts.accessLog ?? warmAccessLog(scn, opts);
  const restarts = log.restarts; // a shared log counts other jobs' restarts too
  let spent = 0;
  for (;;) {
    const left = { maxMs: opts.maxMs === undefined ? undefined : Math.max(0, opts.maxMs - (Date.now() - t0)), maxExecutions: opts.maxExecutions === undefined ? undefined : Math.max(0, opts.maxExecutions - spent) };
    const r = exploreOnce(scn, { ...opts, ...left }, log, out);
    if (!log.invalid) {
      if (r.complete) out.publish?.();
      return { ...r, restarts: log.restarts - restarts, elapsedMs: Date.now() - t0 };
    }
    spent += r.executions;
    log.restart();
    opts.onRestart?.();
  }
}

/**
 * A new access log, filled from random executions unless one thread (and no fork) has nothing to
 * learn. The jobs a thread runs against a shared store share one: it is warmed up once, and an
 * assumption one job made that another contradicts only starts that job again.
 */
export function warmAccessLog(scn: Scenario, opts: ExploreOptions): AccessLog {
  const log = new AccessLog(scn.threads.some((t) => t.steps.some((x) => x.as)));
  if (scn.threads.length > 1 || [...scn.setup, ...scn.threads.flatMap((t) => t.steps)].some((x) => x.op === 'fork')) warmUp(scn, opts, log);
  return log;
}

/** Random executions before the search, by default (a fixed seed: the same log every time). */
export const WARM_UP_RUNS = 32;

/**
 * Fill the access log before the search, from one execution per task in which that task runs
 * whenever it can, then from random executions: every access they record is one some execution
 * makes, so the log stays sound, and the search starts with most of what it would otherwise learn
 * only by running into a contradiction and starting again.
 */
function warmUp(scn: Scenario, opts: ExploreOptions, log: AccessLog): void {
  const rand = rng(0x5eed);
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const runs = opts.warmUp ?? WARM_UP_RUNS;
  let tasks = 0;
  for (let r = 0; r < runs + tasks; r++) {
    const ex = new Execution(scn, { kernel: opts.kernel, mutant: opts.mutant, lockAware: opts.lockAware });
    // first, each task in turn runs whenever it can: what a thread does when it gets everywhere
    // first (allocates the page tables, takes the slow path) is seen for every thread, which
    // random schedules can miss for one of two threads running the same program (none with
    // `warmUp: 0`, which tests use to start cold)
    if (r === 0 && runs > 0) tasks = ex.tasks.length;
    const first = r < tasks ? r : -1;
    for (let depth = 0; ; depth++) {
      const en = ex.runnable(depth, maxDepth, true);
      if (!en) break;
      for (const p of en) log.record(p, ex.tasks[p], ex.pending(p)!);
      ex.step(en.includes(first) ? first : en[Math.floor(rand() * en.length)]);
    }
  }
}

/** What a search leaves for its caller: how to publish its states to the shared store. */
interface Finished {
  publish?: () => void;
}

function exploreOnce(scn: Scenario, opts: ExploreOptions & { job?: DporJob }, log: AccessLog | null, out: Finished): ExploreResult {
  out.publish = undefined;
  const t0 = Date.now();
  const fixed = opts.job?.prefix.length ?? 0;
  const maxExec = opts.maxExecutions ?? Infinity, maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const stack: DporNode[] = [];
  // the stack's steps by what they touch: the races of an event are looked for among those
  const index = new RaceIndex();
  let executions = 0, sleepBlocked = 0, steps = 0, deepest = 0;
  let counterexample: Counterexample | null = null;
  let replayTo = 0; // depth up to which the stack's choices are replayed
  let threadSteps: number[] | undefined;
  const store: FingerprintStore | null = opts.states ? (opts.store?.() ?? new MemFpStore()) : null;
  const shared = store ? (opts.shared ?? null) : null;
  /** shared summaries read so far, by offset, as this search's event codes */
  const sharedSummaries = new Map<number, Set<number>>();
  const summaries = new Map<number, Array<Set<number>>>();
  let statesCut = 0;
  const evIds = new Map<string, number>();
  const evs: Ev[] = [];
  const evId = (e: Ev) => {
    const key = `${e.op}|${e.obj}|${e.acc}|${JSON.stringify(e.also ?? null)}|${JSON.stringify(e.spans ?? null)}`;
    let id = evIds.get(key);
    if (id === undefined) {
      evIds.set(key, (id = evs.length));
      evs.push(e);
    }
    return id;
  };

  while (true) {
    const ex = new Execution(scn, opts);
    let threads: ThreadFp[] = store ? ex.tasks.map((t) => threadStart(t.name)) : [];
    // the step being fingerprinted: its thread, and what it read
    let active: { ts: ThreadFp; obs: number } | null = null;
    if (store) ex.run.k.sched.graph = callCollapse(() => active);
    const enabledAt: number[][] = [];
    const taskClock: Clock[] = [];
    let open: DporNode['held'] = [];
    let lastTask = -1;
    let ended = false;
    const logged: Array<{ e: Ev; held: number } | undefined> = [];
    let blk: Block | null = null;
    let redo: number[] | null = null;

    for (let depth = 0; ; depth++) {
      // a replayed node is the state it was when first reached (runs are deterministic): the
      // tasks enabled then are enabled now, and nothing failed before it
      const en = depth < replayTo ? stack[depth].enabled : ex.runnable(depth, maxDepth, opts.all);
      if (!en) break;
      let node: DporNode;
      if (depth < replayTo) {
        node = stack[depth];
        if (store && depth === replayTo - 1) threads = node.threads!.map(cloneThread);
      } else {
        // a new state: find races of every thread's next step with the steps so far
        const pending = ex.tasks.map((_, i) => ex.pending(i));
        const sleep =
          depth === fixed && opts.job ? new Map(opts.job.sleep.map((q) => [q, pending[q]!] as [number, Ev])) : depth === 0 ? new Map<number, Ev>() : childSleep(stack[depth - 1]);
        node = { enabled: en, pending, backtrack: new Set(), done: new Set(), sleep, chosen: -1, ev: null, task: -1, clock: [], held: [] };
        stack[depth] = node;
        if (log) {
          // a thread that has not moved since it was last logged (same event, same locks) adds nothing
          for (const p of en) {
            const t = ex.tasks[p], r = logged[p];
            if (r && r.e === pending[p] && r.held === t.held.length) continue;
            log.record(p, t, pending[p]!);
            logged[p] = { e: pending[p]!, held: t.held.length };
          }
          // inside an atomic block: its thread goes on, nothing else is scheduled here
          if (blk && depth > fixed && en.includes(blk.task)) {
            node.blkMover = log.kind(blk.task, ex.tasks[blk.task], pending[blk.task]!);
            if (extend(blk.phase, node.blkMover) !== null) node.forcedFrom = blk.start;
          }
        }
        const prev = depth > 0 ? stack[depth - 1] : null;
        for (let p = 0; p < pending.length; p++) {
          const e = pending[p];
          if (!e || (!e.obj && !e.also && !e.spans)) continue;
          const pc = taskClock[p] ?? [];
          // the same next step as at the node before (same event object: the thread did not move):
          // its races with the steps before that one were reversed there; only the last step is new
          const last = prev && prev.pending[p] === e && prev.task !== p ? depth - 1 : -1;
          for (const i of last >= 0 ? [last] : index.candidates(e, depth)) {
            const s = stack[i];
            if (s.task === p || !s.ev || (pc[s.task] ?? -1) >= i) continue; // ...or i happens before p's next step
            if (!dependent(s.ev, e)) continue;
            addBacktrack(stack[lift(i, p, e, depth)], p);
            break;
          }
        }
        if (store && node.forcedFrom !== undefined) {
          // no state inside a block, and never a backtrack point (its block's first node is): the
          // events below it are the block's first node's, so it adds them to that node's summary
          node.summary = stack[node.forcedFrom].summary;
        } else if (store) {
          node.threads = threads.map(cloneThread);
          const fph = stateFingerprint(ex, threads), fp = fph.key();
          const seen = depth >= fixed ? (store.get(fp) ?? sharedGet(fph.a, fph.b)) : undefined;
          if (seen && seen.sleep.every((q) => node.sleep.has(q))) {
            // explored before, with no more threads asleep: reuse it, and let the events below it
            // race with the steps that led here
            node.summary = seen.summary; // only read from here on: the leaf of this execution
            propagate(seen.summary, depth, taskClock);
            statesCut++;
            ended = true;
            break;
          }
          node.fp = fp;
          node.summary = new Set();
          if (!seen) node.sleep0 = [...node.sleep.keys()];
          else {
            // explored before with threads asleep that are awake now (Godefroid, "Partial-order
            // methods for the verification of concurrent systems", LNCS 1032, ch. 6): what was
            // explored then stands (its events race with the steps that led here); from here only
            // those threads are explored, and the state is stored with the sleepers both visits had
            propagate(seen.summary, depth, taskClock);
            for (const x of seen.summary) node.summary.add(x);
            redo = seen.sleep.filter((q) => !node.sleep.has(q));
            node.sleep0 = seen.sleep.filter((q) => node.sleep.has(q));
          }
        }
        const awake = en.filter((p) => !node.sleep.has(p));
        if (node.forcedFrom !== undefined) {
          node.chosen = blk!.task;
          node.done = new Set(en.filter((q) => q !== blk!.task));
        } else if (depth < fixed) {
          // inside the job's prefix: the choice is given and never revisited
          node.chosen = opts.job!.prefix[depth];
          node.done = new Set(en);
        } else if (!awake.length) {
          sleepBlocked++;
          ended = true;
          break;
        } else if (redo) {
          // every one of them: what called for them below was asleep then, and is not stored
          node.chosen = redo.includes(lastTask) ? lastTask : redo[0];
          for (const q of redo) node.backtrack.add(q);
          node.done = new Set(awake.filter((q) => !redo!.includes(q)));
        } else node.chosen = awake.includes(lastTask) ? lastTask : awake[0];
        redo = null;
        node.backtrack.add(node.chosen);
      }
      enabledAt.push(en);
      const p = node.chosen;
      const e = ex.pending(p)!;
      // a replayed step is the one taken before from the same state: its event and the sections
      // open before it are as they were recorded (runs are deterministic)
      if (depth >= replayTo - 1) {
        node.ev = e;
        node.task = p;
        node.held = open.length ? [...open] : NO_HELD;
        index.add(depth, e);
      }
      if (e.op === 'mutex_lock' && e.acc === 'r') open.push([p, e.obj, depth]);
      else if (e.op === 'mutex_unlock') open = open.filter(([t, m]) => t !== p || m !== e.obj);
      // happens-before of this step: after every earlier dependent step (and its own thread's);
      // a replayed step's is the one computed when it was first taken
      if (depth < replayTo - 1) taskClock[p] = node.clock;
      else {
        const c: Clock = [...(taskClock[p] ?? [])];
        for (const i of index.candidates(e, depth)) {
          const s = stack[i];
          if ((c[s.task] ?? -1) >= i) continue;
          if (s.task !== p && s.ev && dependent(s.ev, e)) join(c, s.clock);
        }
        c[p] = depth;
        taskClock[p] = c;
        node.clock = c;
      }
      if (log) {
        // the block open after this step: replayed as it was, or from how this step moves
        if (depth < replayTo - 1) blk = node.blkAfter ?? null;
        else {
          const open = blk as Block | null;
          const mv: Mover = node.blkMover !== undefined && p === open?.task ? node.blkMover : log.kind(p, ex.tasks[p], e);
          blk = node.forcedFrom !== undefined ? { task: p, phase: extend(blk!.phase, mv) ?? 1, start: node.forcedFrom } : { task: p, phase: extend(0, mv) ?? 1, start: depth };
          node.blkAfter = blk;
        }
      }
      if (store && depth >= replayTo - 1) {
        // what this step reads: the values its event names, and what a lock it takes protects
        const h = new Hasher();
        observe(ex.run, e, h);
        // a task forked during the run gets its fingerprint when it first runs
        const ts = (threads[p] ??= threadStart(ex.tasks[p].name)), obs = h.fp();
        ts.cur = new Hasher().num(ts.cur).num(obs).fp();
        const before = ex.run.steps.length;
        active = { ts, obs };
        ex.step(p);
        active = null;
        const after = new Hasher();
        taskAfter(ex.tasks[p], after);
        const name = ex.tasks[p].name;
        // an operation finished in this step: the program keeps only its results, and what this
        // step read for the next operation
        let finished = false;
        for (let j = before; j < ex.run.steps.length && !finished; j++) finished = ex.run.steps[j].thread === name;
        if (finished)
          ts.cur = new Hasher().str('ops').str(resultsOf(ex, name)).num(obs).num(after.fp()).fp();
        else ts.cur = new Hasher().num(ts.cur).num(after.fp()).fp();
        node.summary?.add(summaryCode(p, evId(e)));
      } else {
        // with `all` every execution's end state is wanted with all it broke on the way, and what
        // a replayed step broke was recorded in the execution that first took it: check again
        ex.step(p, depth < replayTo - 1 && !opts.all);
      }
      steps++;
      lastTask = p;
      deepest = Math.max(deepest, depth + 1);
    }
    if (!ended) ex.end();
    executions++;
    threadSteps = countSteps(ex, threadSteps);
    if (!ended) opts.onExecution?.(ex);
    if (ex.failure) {
      counterexample ??= { ...ex.failure, schedule: ex.schedule(), preemptions: preemptionsOf(ex, enabledAt) };
      if (!opts.all) break;
    }
    if (opts.progress && executions % 64 === 0) opts.progress({ executions, steps, depth: deepest, elapsedMs: Date.now() - t0, pending: pendingChoices(), ...(store ? { states: store.size } : {}) });
    if (log?.invalid) return done(false);
    if (executions >= maxExec || (opts.maxMs !== undefined && Date.now() - t0 >= opts.maxMs)) return done(false);
    // backtrack: the deepest node with an unexplored, awake backtrack choice (a sleep-blocked
    // execution left one extra node, with no choice, at its end)
    stack.length = ex.choices.length + (ended ? 1 : 0);
    const explored = stack.length;
    let d = stack.length - 1;
    for (; d >= fixed; d--) {
      const n = stack[d];
      // the lowest backtrack choice not explored, not asleep (nodes without one are dropped as they are)
      let next = -1;
      for (const q of n.backtrack) if (q !== n.chosen && !n.done.has(q) && !n.sleep.has(q) && (next < 0 || q < next)) next = q;
      if (next < 0) continue;
      if (n.chosen >= 0) {
        n.done.add(n.chosen);
        // asleep, a thread stands for its whole next block: everything the block touched
        if (n.ev) n.sleep.set(n.chosen, log ? blockEv(d) : n.ev);
      }
      n.chosen = next;
      n.ev = null;
      break;
    }
    // the nodes below the next choice are finished: remember their states
    if (store) for (let k = explored - 1; k > Math.max(d, fixed - 1); k--) finish(stack[k], stack[k - 1]);
    if (d < fixed) return done(true);
    stack.length = d + 1;
    index.truncate(d);
    replayTo = d + 1;
  }
  return done(false);

  /** Backtrack choices on the stack not yet explored nor asleep: each is one more execution at least. */
  function pendingChoices(): number {
    let n = 0;
    for (let d = fixed; d < stack.length; d++) {
      const x = stack[d];
      for (const q of x.backtrack) if (q !== x.chosen && !x.done.has(q) && !x.sleep.has(q)) n++;
    }
    return n;
  }

  /**
   * Where a race of p's next step `e` with step i must be reversed. Read-only mutex sections
   * commute, so their lock events do not order them; but p cannot run before step i while another
   * thread holds, in such a section, a mutex p takes on its way to `e`: the reversal then starts
   * before that section's mutex_lock (and again, if another section was open there).
   */
  function lift(i: number, p: number, e: Ev, depth: number, alsoTakes?: (m: string) => boolean): number {
    const takes = (m: string, from: number) => {
      if (alsoTakes?.(m)) return true;
      if (e.op.startsWith('mutex_lock') && e.obj === m) return true;
      for (let k = from + 1; k < depth; k++) if (stack[k].task === p && stack[k].ev?.op === 'mutex_lock' && stack[k].ev!.obj === m) return true;
      return false;
    };
    let t = i;
    for (let moved = true; moved; ) {
      moved = false;
      for (const [holder, m, j] of stack[t].held) {
        if (holder !== p && j < t && takes(m, t)) {
          t = j;
          moved = true;
          break;
        }
      }
    }
    return t;
  }

  /** The steps of the block that begins at node d, as one event (the union of what they touch). */
  function blockEv(d: number): Ev {
    const first = stack[d].ev!;
    const also: Array<{ obj: string; acc: Acc }> = [...(first.also ?? [])];
    const spans: Span[] = [...(first.spans ?? [])];
    for (let k = d + 1; k < stack.length && stack[k].forcedFrom === d && stack[k].ev; k++) {
      const e = stack[k].ev!;
      if (e.obj) also.push({ obj: e.obj, acc: e.acc });
      if (e.also) also.push(...e.also);
      if (e.spans) spans.push(...e.spans);
    }
    return ev(first.op, first.obj, first.acc, also, spans);
  }

  /**
   * Explore p at node t; if p cannot run there, every thread that can (Flanagan and Godefroid).
   * Inside an atomic block, at the block's first node: reordering p with a step of the block is
   * reordering it with the whole block.
   */
  function addBacktrack(t: DporNode, p: number): void {
    if (t.forcedFrom !== undefined) t = stack[t.forcedFrom];
    if (t.enabled.includes(p)) t.backtrack.add(p);
    else for (const q of t.enabled) t.backtrack.add(q);
  }

  function finish(n: DporNode, parent: DporNode | undefined): void {
    if (n.fp) store!.set(n.fp, { sleep: n.sleep0!, summary: intern(n.summary!) });
    if (parent?.summary && parent.summary !== n.summary) for (const x of n.summary!) parent.summary.add(x);
  }

  /**
   * One copy of each summary the store holds: states far apart have the same events below them
   * (on a 2x2x2 race, 38,000 states share 2,400 summaries), and the copies were most of its memory.
   */
  function intern(x: Set<number>): Set<number> {
    let h = x.size;
    for (const v of x) h = (h + Math.imul(v ^ (v >>> 15), 0x2c1b3c6d)) | 0; // order-independent
    const l = summaries.get(h);
    if (!l) summaries.set(h, [x]);
    else {
      for (const y of l) if (y.size === x.size && sameMembers(x, y)) return y;
      l.push(x);
    }
    return x;
  }

  /**
   * A state reached again: every event below it, by each thread, races with the steps that led here
   * as a next step of that thread would. How it would be ordered below is unknown, so every
   * earlier conflicting step of another thread not already before the thread counts, not only the
   * last (conservative: more backtracking, never less).
   */
  function propagate(summary: Set<number>, depth: number, taskClock: Clock[]): void {
    // the mutexes each thread takes below the state
    const locked = new Map<number, Set<string>>();
    for (const x of summary) {
      const p = taskOf(x), e = evs[evIdOf(x)];
      if (e.op !== 'mutex_lock') continue;
      let m = locked.get(p);
      if (!m) locked.set(p, (m = new Set()));
      m.add(e.obj);
    }
    for (const x of summary) {
      const p = taskOf(x), e = evs[evIdOf(x)];
      const pc = taskClock[p] ?? [];
      const mine = locked.get(p);
      for (const i of index.candidates(e, depth)) {
        const s = stack[i];
        if (s.task === p || !s.ev || (pc[s.task] ?? -1) >= i || !dependent(s.ev, e)) continue;
        addBacktrack(stack[lift(i, p, e, depth, (m) => !!mine?.has(m))], p);
      }
    }
  }

  /** A state another job (or worker) published, with its summary in this search's event codes. */
  function sharedGet(a: number, b: number): StateEntry | undefined {
    const at = shared?.get(a, b) ?? -1;
    if (at < 0) return undefined;
    const { summary: sAt, publisher, sleep } = shared!.readState(at);
    // with atomic blocks, a state another thread explored only once this thread's log has taken in
    // what that thread's recorded, which includes what the executions below the state do
    if (log && publisher !== shared!.publisher) {
      if (!log.joined || shared!.journalBroken) return undefined;
      log.absorb();
      if (log.invalid) return undefined;
    }
    let summary = sharedSummaries.get(sAt);
    if (!summary) {
      summary = new Set(shared!.readSummary(sAt).map(([p, e]) => summaryCode(p, evId(e))));
      sharedSummaries.set(sAt, summary);
    }
    return { sleep, summary };
  }

  /** Publish every state this search stored (each summary written once). */
  function publish(): void {
    const written = new Map<Set<number>, number>();
    for (const [fp, e] of store!.entries()) {
      let sAt = written.get(e.summary);
      if (sAt === undefined) {
        sAt = shared!.summary([...e.summary].map((x) => [taskOf(x), evs[evIdOf(x)]] as [number, Ev]));
        written.set(e.summary, sAt);
      }
      if (sAt < 0) return; // the arena is full
      const at = shared!.state(sAt, e.sleep);
      const [a, b] = Hasher.lanes(fp);
      if (at < 0 || !shared!.put(a, b, at)) return;
    }
  }

  function done(complete: boolean): ExploreResult {
    if (complete && shared) out.publish = publish;
    return { mode: 'dpor', ...(store ? { states: store.size, statesCut } : {}), threadSteps, executions, sleepBlocked, steps, maxDepth: deepest, complete: complete && (!counterexample || !!opts.all), counterexample, elapsedMs: Date.now() - t0 };
  }
}

/**
 * The jobs of a DPOR run split at `depth`: every choice not asleep at depths < depth, with sleep
 * sets carried down as DPOR would. A prefix that ends early (the run finished) is a job too.
 */
export function dporJobs(scn: Scenario, depth: number, opts: ExecOptions = {}): DporJob[] {
  const jobs: DporJob[] = [];
  const walk = (prefix: number[], sleep: number[]) => {
    const ex = new Execution(scn, opts);
    for (const p of prefix) ex.step(p);
    const en = ex.enabled();
    if (prefix.length >= depth || !en.length || ex.failure) return void jobs.push({ prefix, sleep });
    const pending = ex.tasks.map((_, i) => ex.pending(i));
    const done: number[] = [];
    for (const p of en) {
      if (sleep.includes(p)) continue;
      const e = pending[p]!;
      walk([...prefix, p], [...sleep, ...done].filter((q) => q !== p && !dependent(pending[q]!, e)));
      done.push(p);
    }
  };
  walk([], []);
  return jobs;
}

/** Add up the results of jobs run in order; the first counterexample in job order wins. */
export function mergeJobResults(results: ExploreResult[], t0: number): ExploreResult {
  const ts = results.filter((r) => r.threadSteps).map((r) => r.threadSteps!);
  const out: ExploreResult = { mode: 'dpor', threadSteps: ts.length ? ts[0].map((_, i) => Math.max(...ts.map((t) => t[i] ?? 0))) : undefined, executions: 0, sleepBlocked: 0, steps: 0, maxDepth: 0, complete: true, counterexample: null, elapsedMs: 0 };
  for (const r of results) {
    if (r.states !== undefined) {
      out.states = (out.states ?? 0) + r.states;
      out.statesCut = (out.statesCut ?? 0) + (r.statesCut ?? 0);
      out.statesStores = (out.statesStores ?? 0) + (r.statesStores ?? 1);
    }
    if (r.restarts !== undefined) out.restarts = (out.restarts ?? 0) + r.restarts;
    out.executions += r.executions;
    out.sleepBlocked += r.sleepBlocked;
    out.steps += r.steps;
    out.maxDepth = Math.max(out.maxDepth, r.maxDepth);
    // a job cut short by its first counterexample is not complete; with `all` it went on
    out.counterexample ??= r.counterexample;
    if (!r.complete) {
      out.complete = false;
      break;
    }
  }
  out.elapsedMs = Date.now() - t0;
  if (out.statesStores === 1) delete out.statesStores;
  return out;
}


/**
 * Run DPOR jobs one after another within the budgets (counted over all of them); stop after a
 * counterexample or a job cut short, since later jobs cannot change the merged verdict.
 */
export function runDporJobs(scn: Scenario, jobs: Array<{ index: number; job: DporJob }>, opts: ExploreOptions = {}): Array<{ job: number; result: ExploreResult }> {
  const t0 = Date.now();
  const out: Array<{ job: number; result: ExploreResult }> = [];
  let total = 0, steps = 0, depth = 0, states = 0, finished = 0;
  // jobs that share a store share an access log too; others (shards) each learn their own, so
  // that a job's executions do not depend on which jobs ran before it
  if (opts.shared && opts.atomic && !opts.accessLog) opts = { ...opts, accessLog: warmAccessLog(scn, opts) };
  for (const { index, job } of jobs) {
    const left = (opts.maxExecutions ?? Infinity) - total;
    const ms = opts.maxMs === undefined ? undefined : opts.maxMs - (Date.now() - t0);
    if (left <= 0 || (ms !== undefined && ms <= 0)) {
      out.push({ job: index, result: notRun() });
      break;
    }
    // a job counts from zero: report the running total over the jobs before it
    const before = total, stepsBefore = steps, statesBefore = states, jobsDone: [number, number] = [finished, jobs.length];
    const progress = opts.progress && ((p: Progress) => opts.progress!({ ...p, executions: before + p.executions, steps: stepsBefore + p.steps, elapsedMs: Date.now() - t0, jobs: jobsDone, ...(p.states !== undefined ? { states: statesBefore + p.states } : {}) }));
    const r = exploreDpor(scn, { ...opts, job, maxExecutions: left, maxMs: ms, progress: progress || undefined });
    out.push({ job: index, result: r });
    total += r.executions;
    steps += r.steps;
    states += r.states ?? 0;
    finished++;
    depth = Math.max(depth, r.maxDepth);
    if ((r.counterexample && !opts.all) || !r.complete) break;
    opts.progress?.({ executions: total, steps, depth, elapsedMs: Date.now() - t0, jobs: [finished, jobs.length], ...(opts.states ? { states } : {}) });
  }
  return out;
}

/**
 * DPOR over the jobs of a split, one after another: the single-threaded twin of the parallel run.
 * `share`: with state caching, the jobs share one store (as workers do): fewer executions. Without,
 * every job runs on its own, as on shards, whose merged results this equals.
 */
export function exploreDporSplit(scn: Scenario, depth: number, opts: ExploreOptions = {}, share = true): ExploreResult {
  const t0 = Date.now();
  const jobs = dporJobs(scn, depth, opts).map((job, index) => ({ index, job }));
  const shared = share && opts.states ? new SharedStates(sharedStoreBuffers()) : undefined;
  const r = mergeJobResults(runDporJobs(scn, jobs, { ...opts, shared }).map((j) => j.result), t0);
  return shared ? withSharedStates(r, shared) : r;
}

/** The distinct states of a search on a shared store: those published, or, where jobs were cut short before publishing, what they stored. */
export function withSharedStates(r: ExploreResult, shared: SharedStates): ExploreResult {
  // the sum of the jobs' own counts stands only where it is larger (jobs cut short, a full table)
  if ((r.states ?? 0) > shared.size) return r;
  const { statesStores: _, ...rest } = r;
  return { ...rest, states: shared.size };
}

function sameMembers(x: Set<number>, y: Set<number>): boolean {
  for (const v of x) if (!y.has(v)) return false;
  return true;
}

/** The most steps each thread took in one execution so far, with this one's. */
function countSteps(ex: Execution, most: number[] | undefined): number[] {
  const out = ex.tasks.map((_, i) => most?.[i] ?? 0), now = ex.tasks.map(() => 0);
  for (const c of ex.choices) now[c]++;
  for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i], now[i]);
  return out;
}

/** Sleep set of the state after `n` took its chosen step: sleepers independent of that step stay. */
function childSleep(n: DporNode): Map<number, Ev> {
  const out = new Map<number, Ev>();
  const e = n.pending[n.chosen];
  for (const [q, qe] of n.sleep) if (q !== n.chosen && e && !dependent(qe, e)) out.set(q, qe);
  return out;
}

/** A state: the whole kernel and the run's records, and each thread's fingerprint. */
function stateFingerprint(ex: Execution, threads: ThreadFp[]): Hasher {
  const h = new Hasher().num(kernelHash(ex.run));
  for (const t of threads) {
    if (!t) {
      h.mix(0); // a forked task that has not run yet
      continue;
    }
    h.num(t.cur).num(t.frames.length);
    for (const f of t.frames) h.num(f.base);
  }
  return h;
}

const big = (_: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
function resultsOf(ex: Execution, thread: string): string {
  return ex.run.steps.filter((x) => x.thread === thread).map((x) => JSON.stringify(x.result, big)).join(';');
}
