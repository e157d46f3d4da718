import { spawn } from 'node:child_process';

/**
 * OpenSSL as a separate process, without blocking this one (the service it asks may run in this
 * process): its exit status and everything it printed, stdout and stderr together.
 */
export function opensslAsync(args: string[]): Promise<{ status: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, out }));
  });
}
