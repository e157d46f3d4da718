import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CardlinkError } from '../errors.js';

export interface AgentLock {
  readonly path: string;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One agent per state directory: a lock file created exclusively (O_EXCL) holding the owner's
 * PID. A lock left by an agent that died is taken over; one whose owner runs refuses with
 * AGENT_RUNNING, naming the PID.
 */
export function acquireAgentLock(path: string): AgentLock {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // Gone between our open and read: try again.
      }
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
        throw new CardlinkError('AGENT_RUNNING', `another cardlink agent (pid ${owner}) already runs with this state directory (lock ${path}); stop it first`);
      }
      // Stale (its owner is gone) or half-written: remove it and try again.
      try {
        unlinkSync(path);
      } catch {
        // Someone else removed it first.
      }
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    let released = false;
    return {
      path,
      release() {
        if (released) return;
        released = true;
        try {
          if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
        } catch {
          // Already gone.
        }
      },
    };
  }
  throw new CardlinkError('AGENT_RUNNING', `could not take the agent lock ${path}`);
}
