import { readFileSync } from 'node:fs';

/** cardlink's version from package.json (reported to the service with each delivery). */
export function agentVersion(): string {
  try {
    // src/agent/ under tsx and dist/agent/ when built: the package root is two levels up.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
