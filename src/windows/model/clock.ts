/**
 * Time for the Windows model: the asynchronous services (Certificate Propagation) schedule work
 * through a Scheduler, so tests drive time by hand and every run is deterministic.
 */
export interface Scheduled {
  cancel(): void;
}

export interface Scheduler {
  /** Milliseconds since an arbitrary origin. */
  now(): number;
  schedule(delayMs: number, task: () => Promise<void>): Scheduled;
}

/** Real time, for the CLI: tasks run on Node's timers. */
export class RealScheduler implements Scheduler {
  private readonly pending = new Set<Promise<void>>();

  now(): number {
    return Date.now();
  }

  schedule(delayMs: number, task: () => Promise<void>): Scheduled {
    const timer = setTimeout(() => {
      const p = task().finally(() => this.pending.delete(p));
      this.pending.add(p);
    }, delayMs);
    return { cancel: () => clearTimeout(timer) };
  }

  /** Resolves when every task that has started has finished. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

interface Entry {
  at: number;
  seq: number;
  task: () => Promise<void>;
  cancelled: boolean;
}

/** Time that moves only when a test says so; due tasks run in time order, one at a time. */
export class ManualScheduler implements Scheduler {
  private time = 0;
  private seq = 0;
  private readonly queue: Entry[] = [];

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, task: () => Promise<void>): Scheduled {
    const entry: Entry = { at: this.time + Math.max(0, delayMs), seq: this.seq++, task, cancelled: false };
    this.queue.push(entry);
    return { cancel: () => (entry.cancelled = true) };
  }

  /** Pending (not cancelled) tasks. */
  get pending(): number {
    return this.queue.filter((e) => !e.cancelled).length;
  }

  /** Moves time forward by `ms`, running every task that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const i = this.queue.findIndex((e) => !e.cancelled && e.at <= end);
      if (i < 0) break;
      const [entry] = this.queue.splice(i, 1);
      this.time = Math.max(this.time, entry!.at);
      await entry!.task();
    }
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.cancelled) this.queue.splice(i, 1);
    this.time = end;
  }
}
