/**
 * Shared by the PC/SC test files: they run against the one private pcscd that scripts/run-tests.mjs
 * starts, whose vpcd has two slots, so each file holds a cross-process lock while it uses them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { attachToVpcd, type VpcdAttachment, type VpcdCard, type VpcdEvent } from '../../src/vpcd/attach.js';
import { waitForPcscCard } from '../../src/transport/pcsc.js';

export const STATE_DIR = resolve(process.env.PCSC_STATE_DIR ?? '.pcsc-state');
export const VPCD_HOST = process.env.VPCD_ADDR ?? '127.0.0.2';
const BASE_PORT = Number(process.env.VPCD_PORT ?? 35963);

export const SLOTS = [
  { reader: 'Virtual PCD 00 00', port: BASE_PORT, index: 0 },
  { reader: 'Virtual PCD 00 01', port: BASE_PORT + 1, index: 1 },
] as const;
export type Slot = (typeof SLOTS)[number];

function pcscdPid(): number | undefined {
  try {
    const pid = Number(readFileSync(join(STATE_DIR, 'pcscd.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Fails loudly (never skips) when the test run did not start pcscd. */
export function requirePcscd(): number {
  const pid = pcscdPid();
  if (pid === undefined) {
    throw new Error(`PC/SC tests need the private pcscd: run them through \`npm test -- pcsc\` (no live pcscd.pid in ${STATE_DIR})`);
  }
  return pid;
}

const LOCK = join(STATE_DIR, 'tests.lock');

/** Takes the lock on pcscd and both vpcd slots; returns the release function. */
export async function lockPcsc(timeoutMs = 20 * 60_000): Promise<() => void> {
  requirePcscd();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch {
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
        process.kill(holder, 0);
      } catch {
        // The holder died without releasing (or is between mkdir and writing its pid).
        if (!Number.isNaN(holder)) rmSync(LOCK, { recursive: true, force: true });
      }
      if (Date.now() > deadline) throw new Error(`PC/SC test lock held by pid ${holder} for too long`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface InsertedCard {
  attachment: VpcdAttachment;
  events: VpcdEvent[];
  /** Detaches and waits until pcscd shows the slot empty. */
  eject(): Promise<void>;
}

/** Puts a card in a vpcd slot and waits until pcscd reports it present. */
export async function insertCard(card: VpcdCard, slot: Slot = SLOTS[0]): Promise<InsertedCard> {
  const ac = new AbortController();
  const events: VpcdEvent[] = [];
  const attachment = attachToVpcd(card, { host: VPCD_HOST, port: slot.port, signal: ac.signal, onEvent: (e) => events.push(e) });
  await waitForPcscCard(slot.reader, 'present', { timeoutMs: 10_000 });
  return {
    attachment,
    events,
    async eject() {
      ac.abort();
      await waitForPcscCard(slot.reader, 'empty', { timeoutMs: 10_000 });
    },
  };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs an external tool without blocking the event loop: an emulator attached in this process
 * must keep answering vpcd while the tool talks to it.
 */
export function runTool(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolvePromise) => {
    const child = execFile(
      command,
      args,
      { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolvePromise({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}
