/**
 * How repair keeps itself honest. Each step names the findings it works on, runs its card writes
 * through `step` and says, per finding, what a fresh read of the card must show once it has
 * worked (`expect`). After the last step repair reads the card again; a finding is fixed only when
 * every write for it went through, every expectation holds on that fresh read, and a fresh check
 * no longer reports it.
 */
import { CardlinkError } from '../../errors.js';
import type { ContainerRecord } from '../../minidriver/index.js';
import { TransportError } from '../../transport/transport.js';
import { sameFinding, type CheckReport, type Finding } from './report.js';
import type { Snapshot } from './snapshot.js';

/** What repair will write, built up step by step from the snapshot check read. */
export interface Plan {
  /** cmapfile as it must be written. */
  cmap: ContainerRecord[];
  /** Lower-case paths the file table holds as repair goes. */
  tableNames: Set<string>;
}

interface Entry {
  failure: string | undefined;
  expectations: Array<{ what: string; holds: (after: Snapshot) => boolean }>;
}

export class RepairLog {
  private readonly entries = new Map<Finding, Entry>();

  private entry(f: Finding): Entry {
    let e = this.entries.get(f);
    if (!e) {
      e = { failure: undefined, expectations: [] };
      this.entries.set(f, e);
    }
    return e;
  }

  /** Registers what the card must show afterwards for `f` to count as fixed. */
  expect(f: Finding, what: string, holds: (after: Snapshot) => boolean): void {
    this.entry(f).expectations.push({ what, holds });
  }

  /**
   * Runs one card step (writes, or the reads they need) for `findings`. A refusal by the card (an
   * error status, a file the card says it does not have) marks them not fixed and returns false;
   * a card that is gone (TransportError) ends the repair.
   */
  async step(findings: readonly Finding[], what: string, fn: () => Promise<unknown>): Promise<boolean> {
    for (const f of findings) this.entry(f);
    try {
      await fn();
      return true;
    } catch (err) {
      if (err instanceof TransportError || !(err instanceof CardlinkError)) throw err;
      for (const f of findings) this.entry(f).failure ??= `${what}: ${err.message}`;
      return false;
    }
  }

  /** Marks `findings` not fixed without trying (a step they depend on failed). */
  skip(findings: readonly Finding[], why: string): void {
    for (const f of findings) this.entry(f).failure ??= why;
  }

  /** Sets `fixed` (and `failure`) on every finding a step worked on, from the fresh read after. */
  settle(before: CheckReport, after: CheckReport, snapshot: Snapshot): void {
    for (const f of before.findings) {
      const e = this.entries.get(f);
      if (!e) continue;
      let failure = e.failure;
      if (failure === undefined) failure = e.expectations.find((x) => !x.holds(snapshot))?.what;
      if (failure === undefined && after.findings.some((g) => sameFinding(f, g))) failure = 'a fresh check still finds it';
      f.fixed = failure === undefined;
      if (failure !== undefined) f.failure = failure;
    }
  }
}
