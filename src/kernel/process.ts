// A process: one mm and one fd table, shared by its threads.
import { FdTable } from './fs/file.ts';
import { MmStruct } from './mm/vma.ts';
import type { Sched } from './sched/sched.ts';

export class Process {
  readonly mm: MmStruct;
  readonly files: FdTable;
  exited = false;
  constructor(sched: Sched, readonly pid: number, readonly name: string) {
    this.mm = new MmStruct(sched, pid);
    this.files = new FdTable(`p${pid}.files`);
  }
}

/** What a task's owner is: the thread of a process. */
export interface ThreadCtx {
  proc: Process;
  name: string;
}
