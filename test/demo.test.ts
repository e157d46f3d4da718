import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers/card.js';

// The README's main job, through the real binary (built by `npm run build` before the tests).
test('cardlink demo tells the whole seed story and ends with the seed tool working', () => {
  const dir = tempDir('cardlink-demo-test-');
  const out = execFileSync(process.execPath, ['bin/cardlink', 'demo', '--dir', dir, '--json'], {
    encoding: 'utf8',
    env: { ...process.env, CARDLINK_HOME: join(dir, 'home') },
  });
  const { ok, steps } = JSON.parse(out) as { ok: boolean; steps: Array<{ step: string; text: string; detail: Record<string, unknown> }> };
  assert.equal(ok, true);
  const texts = steps.map((s) => `${s.step}: ${s.text}`).join('\n');
  const order = ['init', 'service', 'day 0', 'day 3', 'day 4', 'check', 'link', 'seed way', 'seed tool', 'doctor', 'check', 'repair', 'link', 'seed tool'];
  let at = 0;
  for (const name of order) {
    const i = steps.findIndex((s, k) => k >= at && s.step === name);
    assert.ok(i >= 0, `step ${name} after ${at} in\n${texts}`);
    at = i + 1;
  }
  assert.equal(steps.find((s) => s.step === 'day 0')!.detail.state, 'pending');
  assert.equal(steps.find((s) => s.step === 'day 3')!.detail.state, 'issued');
  const collected = steps.find((s) => s.step === 'day 4')!.detail;
  assert.deepEqual([collected.action, collected.linked, collected.reported], ['installed', true, true]);
  assert.equal((steps.find((s) => s.step === 'link')!.detail.proof as { verified: boolean }).verified, true);
  assert.deepEqual(steps.filter((s) => s.step === 'check')[0]!.detail.findings, []);
  assert.equal(steps.find((s) => s.step === 'seed tool')!.detail.hresult, 0x8009200b);
  assert.ok(steps.some((s) => s.step === 'doctor' && s.detail.code === 'STALE_CACHE'));
  assert.match(texts, /STALE_FILES_COUNTER/);
  assert.match(steps.at(-1)!.text, /succeeds at the first try/);
  // The throwaway PIN is never printed.
  assert.doesNotMatch(out, /"pin"/i);
});
