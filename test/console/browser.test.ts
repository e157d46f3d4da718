/**
 * Issue 15's acceptance in a real browser: Debian's Chromium driven by playwright-core against a
 * real `cardlink serve` on loopback (a child process, stopped at the end), with the agent's side
 * done by the real CLI (`enroll`, `collect`) on an emulated card image. One browser for the file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { hex } from '../../src/bytes.js';
import { ServiceClient } from '../../src/service/client.js';
import { TEST_ADMIN_KEY, TEST_PIN, tempDir } from '../helpers/card.js';
import { cli } from '../helpers/cli.js';
import { randomCardId, softKey } from '../service/helpers.js';
import { send } from './helpers.js';

const CHROMIUM = process.env.CARDLINK_CHROMIUM ?? '/usr/bin/chromium';
const ADMIN = { username: 'admin', password: 'console admin password' };
const SECOND = { username: 'bea', password: 'second operator password', role: 'approver' as const };
const SHOTS = join('test-results', 'console');
const require = createRequire(import.meta.url);

describe('the operator console in Chromium', { timeout: 180_000 }, () => {
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let url: string;
  let caFile: string;
  let client: ServiceClient;
  let session: string;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  const dir = tempDir();
  const image = join(dir, 'card.json');
  const env = { CARDLINK_HOME: join(dir, 'home'), CARDLINK_PIN: TEST_PIN };

  before(async () => {
    const home = join(dir, 'service-home');
    child = spawn(process.execPath, ['--import', 'tsx', 'test/service/fixtures/cli-entry.ts', 'serve', '--listen', '127.0.0.1:0', '--json'], {
      env: { PATH: process.env.PATH ?? '', HOME: home, CARDLINK_HOME: home, CARDLINK_CA_PASSPHRASE: 'console test passphrase', CARDLINK_OPERATOR_PASSWORD: ADMIN.password },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => child.on('exit', resolve));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.resume();
    const end = Date.now() + 60_000;
    while (!stdout.includes('\n') && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const facts = JSON.parse(stdout.split('\n')[0]!) as { url: string; caCertificate: string };
    url = facts.url;
    caFile = facts.caCertificate;
    client = new ServiceClient({ server: url, ca: readFileSync(caFile, 'utf8') });
    session = (await client.login(ADMIN)).token;
    await client.createOperator(session, SECOND);
    assert.equal((await cli(['card', 'init', '--image', image], { ...env, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) })).code, 0);
    mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    // The service's certificate comes from its own CA, which this throwaway browser profile does not know.
    ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
    page = await ctx.newPage();
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  });

  after(async () => {
    await browser?.close();
    client?.close();
    child?.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  /**
   * Each user's own card image (alice has the one made in `before`): the service keeps card
   * records, and a card enrolled by one user is refused to another until an operator retires it.
   */
  const images = new Map<string, string>([['alice@example.com', image]]);
  async function imageOf(user: string): Promise<string> {
    let path = images.get(user);
    if (!path) {
      path = join(dir, `card-${images.size}.json`);
      assert.equal((await cli(['card', 'init', '--image', path], { ...env, CARDLINK_ADMIN_KEY: hex(TEST_ADMIN_KEY) })).code, 0);
      images.set(user, path);
    }
    return path;
  }
  /** The agent's side: `cardlink enroll` with a token on the user's card image; the request id. */
  async function enroll(token: string, user: string): Promise<string> {
    const r = await cli(['enroll', '--server', url, '--cacert', caFile, '--image', await imageOf(user), '--bits', '2048', '--json'], { ...env, CARDLINK_TOKEN: token });
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { requestId: string }).requestId;
  }
  const collect = () => cli(['collect', '--server', url, '--cacert', caFile, '--image', image, '--store', `model:${join(dir, 'store')}`], env);
  const newToken = async (user: string) => (await client.createToken(session, { user, profile: 'smartcard-logon' })).token;
  const stateOf = async (id: string) => (await client.request(session, id)).value.state;

  async function signIn(p: Page, who: { username: string; password: string }): Promise<void> {
    await p.goto(`${url}/console/`);
    await p.getByLabel('Operator name').fill(who.username);
    await p.getByLabel('Password').fill(who.password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForURL(/\/console\/pending$/);
  }

  test('sign in, see the request the agent submitted, approve it: the next collect gets the certificate', async () => {
    const id = await enroll(await newToken('alice@example.com'), 'alice@example.com');
    await signIn(page, ADMIN);
    const row = page.locator(`tr[data-request="${id}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /alice@example\.com/);
    assert.match(await row.innerText(), /RSA 2048/);
    assert.match(await row.innerText(), /from 127\.0\.0\.1, with an enrollment token/);
    // The operator's time zone in the text (the script rewrote the server's UTC), UTC in the title.
    const submitted = row.locator('time');
    const title = (await submitted.getAttribute('title'))!;
    assert.match(title, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
    await page.waitForFunction(`document.querySelector('tr[data-request="${id}"] time').textContent !== ${JSON.stringify(title)}`);
    assert.match(await submitted.innerText(), /CET|CEST|GMT\+[12]/);
    await row.getByRole('link', { name: 'Approve the request of alice@example.com' }).click();
    await page.getByRole('button', { name: 'Approve the request of alice@example.com' }).click();
    await page.waitForURL(/done=approved/);
    assert.match(await page.getByRole('status').first().innerText(), /Request approved/);
    assert.equal(await page.locator(`tr[data-request="${id}"]`).count(), 0);
    const got = await collect();
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await stateOf(id), 'delivered');
  });

  test('reject another with a reason: the agent sees the reason', async () => {
    const id = await enroll(await newToken('alice@example.com'), 'alice@example.com');
    await page.goto(`${url}/console/pending`);
    await page.locator(`tr[data-request="${id}"]`).getByRole('link', { name: /^Reject/ }).click();
    await page.getByLabel('Reason (the user sees it)').fill('Wrong department <b>"x"</b>');
    await page.getByRole('button', { name: /^Reject the request/ }).click();
    await page.waitForURL(/done=rejected/);
    assert.equal(await stateOf(id), 'rejected');
    const got = await collect();
    assert.equal(got.code, 0, got.stderr);
    assert.ok(got.stdout.includes(`${id}  `) && got.stdout.includes('rejected by an operator (Wrong department <b>"x"</b>)'), got.stdout);
  });

  test('issue a token (shown once, with a copy button) and enroll with it', async () => {
    await page.goto(`${url}/console/tokens`);
    await page.getByLabel('User principal name').fill('carol@example.com');
    await page.getByLabel('Profile').selectOption('smartcard-logon-auto');
    await page.getByRole('button', { name: 'Issue token' }).click();
    const secret = (await page.locator('#token-secret').innerText()).trim();
    assert.match(secret, /^cle_[A-Za-z0-9_-]{43}$/);
    await page.getByRole('button', { name: 'Copy the token' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), secret);
    await page.goto(`${url}/console/tokens`);
    assert.equal(await page.getByText(secret).count(), 0, 'shown once: not on the list');
    const id = await enroll(secret, 'carol@example.com');
    assert.equal(await stateOf(id), 'issued');
    await page.goto(`${url}/console/tokens`);
    assert.match(await page.locator('tr', { hasText: 'carol@example.com' }).innerText(), /Used/);
  });

  test('filter the audit log and download it as CSV', async () => {
    await page.goto(`${url}/console/audit`);
    await page.getByLabel('Action').fill('request.rejected');
    await page.getByRole('button', { name: 'Show entries' }).click();
    await page.waitForURL(/action=request\.rejected/);
    const actions = await page.locator('tbody tr td[data-label="Action"]').allInnerTexts();
    assert.ok(actions.length >= 1);
    assert.deepEqual([...new Set(actions)], ['request.rejected']);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download as CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8').trimEnd().split('\r\n');
    assert.equal(csv[0], 'id,at,actor,action,subject,details');
    assert.equal(csv.length - 1, actions.length);
    for (const line of csv.slice(1)) assert.match(line, /,request\.rejected,request:/);
  });

  test('a CSR subject with <script> and quotes shows as text and no script runs', async () => {
    const before = problems.length;
    const subject = `CN=<script>alert("pwned")</script>, O=" onmouseover="alert(1)`;
    const key = await softKey(subject.replace(/"/g, '\\"').replace(/, O=/, ',O='));
    const token = await newToken('dave@example.com');
    const { value } = await client.submit(token, { csr: key.csrPem, cardId: randomCardId(), container: 'x1' });
    await page.goto(`${url}/console/requests/${value.id}`);
    const shown = await page.getByTestId('csr-subject').innerText();
    // As text (in RFC 4514 form, which escapes < > and quotes with a backslash): the markup did not become elements.
    for (const part of ['<script', '</script', '"pwned', 'onmouseover=']) assert.ok(shown.includes(part), `${part} in ${shown}`);
    assert.equal(await page.locator('main script, [onmouseover]').count(), 0);
    await page.goto(`${url}/console/pending`);
    await page.goto(`${url}/console/requests?state=rejected`);
    assert.match(await page.locator('main').innerText(), /Wrong department <b>"x"<\/b>/);
    await page.waitForTimeout(300);
    assert.deepEqual(problems.slice(before), []);
  });

  test('keyboard only: approve a request with key presses', async () => {
    const id = await enroll(await newToken('erin@example.com'), 'erin@example.com');
    await page.goto(`${url}/console/pending`);
    // Browser-side expressions are strings: this project's TypeScript has no DOM library.
    const focused = () => page.evaluate<string>("document.activeElement?.getAttribute('href') ?? document.activeElement?.textContent ?? ''");
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      found = (await focused()) === `/console/requests/${id}/approve`;
    }
    assert.ok(found, 'the Approve link is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/approve$/);
    found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await page.keyboard.press('Tab');
      found = (await focused()) === 'Approve the request of erin@example.com';
    }
    assert.ok(found, 'the confirmation button is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/done=approved/);
    assert.equal(await stateOf(id), 'issued');
  });

  test('two operators: one approves, the other sees the request leave the pending list within 5 s without a reload', async () => {
    const id = await enroll(await newToken('frank@example.com'), 'frank@example.com');
    const other = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    try {
      const bea = await other.newPage();
      await signIn(bea, SECOND);
      await bea.locator(`tr[data-request="${id}"]`).waitFor();
      await bea.evaluate('window.marker = 42');
      await page.goto(`${url}/console/requests/${id}/approve`);
      await page.getByRole('button', { name: /^Approve the request/ }).click();
      await page.waitForURL(/done=approved/);
      const started = Date.now();
      await bea.locator(`tr[data-request="${id}"]`).waitFor({ state: 'detached', timeout: 5000 });
      assert.ok(Date.now() - started < 5000);
      assert.equal(await bea.evaluate<number>('window.marker'), 42, 'the page was not reloaded');
    } finally {
      await other.close();
    }
  });

  let lostCard = '';
  test('mark a card lost from its page with clicks: its certificates show revoked and the replacement token is shown once', async () => {
    // A card of its own (the image's card stays active for the other tests): submitted and approved through the API.
    const cardId = randomCardId();
    const key = await softKey();
    const { value } = await client.submit(await newToken('hanna@example.com'), { csr: key.csrPem, cardId, container: 'h1' });
    await client.approve(session, value.id);
    const serial = (await client.request(session, value.id)).value.serial!;
    await page.goto(`${url}/console/cards`);
    await page.getByLabel('User').fill('hanna@example.com');
    await page.getByRole('button', { name: 'Show cards' }).click();
    await page.getByRole('link', { name: cardId }).click();
    await page.waitForURL(new RegExp(`/console/cards/${cardId}$`));
    assert.match(await page.getByTestId('card-state').innerText(), /Active: in use/);
    await page.getByRole('link', { name: 'Mark lost' }).click();
    await page.getByLabel(/^Why the card is lost/).selectOption('keyCompromise');
    await page.getByLabel(/^Temporary card/).check();
    await page.getByRole('button', { name: 'Mark the card lost' }).click();
    const secret = (await page.locator('#token-secret').innerText()).trim();
    assert.match(secret, /^cle_[A-Za-z0-9_-]{43}$/);
    assert.match(await page.getByTestId('card-state').innerText(), /Lost: certificates revoked/);
    const row = page.locator(`tr[data-request="${value.id}"]`);
    assert.match(await row.innerText(), new RegExp(`${serial}[\\s\\S]*Revoked \\(keyCompromise\\)`));
    assert.match(await page.locator('#card-outcome + p').innerText(), new RegExp(`Revoked: 1 certificate \\(serial ${serial}\\)`));
    await page.getByRole('button', { name: 'Copy the token' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), secret);
    await page.goto(`${url}/console/cards/${cardId}`);
    assert.equal(await page.getByText(secret).count(), 0, 'shown once');
    assert.equal(await page.getByRole('link', { name: 'Resume' }).count(), 0, 'a lost card is not resumed');
    assert.equal((await client.card(session, cardId)).state, 'lost');
    lostCard = cardId;
  });

  test('every page: no serious accessibility violations (axe-core), screenshots at 1280×800 and 390×844', async () => {
    const id = await enroll(await newToken('gina@example.com'), 'gina@example.com');
    const cardId = (await client.request(session, id)).value.cardId!;
    const paths = {
      pending: '/console/pending', requests: '/console/requests', request: `/console/requests/${id}`, approve: `/console/requests/${id}/approve`, tokens: '/console/tokens',
      cards: '/console/cards', card: `/console/cards/${cardId}`, 'card-lost-confirm': `/console/cards/${cardId}/lost`, 'card-lost': `/console/cards/${lostCard}`,
      expiring: '/console/cards/expiring?days=400', audit: '/console/audit', profiles: '/console/profiles', account: '/console/account',
    };
    // The axe script is injected into the page, which the console's CSP forbids: this context alone bypasses CSP.
    const axeCtx = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true, viewport: { width: 1280, height: 800 } });
    try {
      const p = await axeCtx.newPage();
      const axePath = require.resolve('axe-core/axe.min.js');
      const check = async (name: string): Promise<void> => {
        await p.addScriptTag({ path: axePath });
        const result = await p.evaluate<{ violations: { id: string; impact: string; nodes: unknown[] }[] }>(
          "axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })",
        );
        const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${name}: ${v.id} (${v.impact}, ${v.nodes.length} nodes)`);
        assert.deepEqual(serious, []);
      };
      await p.goto(`${url}/console/login`);
      await check('login');
      await p.screenshot({ path: join(SHOTS, 'login-1280.png'), fullPage: true });
      await signIn(p, ADMIN);
      for (const [name, path] of Object.entries(paths)) {
        for (const [width, height] of [[1280, 800], [390, 844]] as const) {
          await p.setViewportSize({ width, height });
          await p.goto(`${url}${path}`);
          if (width === 1280) await check(name);
          await p.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
        }
        // At phone width nothing may scroll sideways but tables (which scroll in their own box).
        const overflow = await p.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
        assert.ok(overflow <= 1, `${name} is ${overflow}px too wide at 390px`);
      }
    } finally {
      await axeCtx.close();
    }
    // The pending page with a request waiting, as the README shows it.
    await page.goto(`${url}/console/pending`);
    await page.locator(`tr[data-request="${id}"]`).waitFor();
    await page.screenshot({ path: join(SHOTS, 'pending-readme-1280.png') });
    if (process.env.CARDLINK_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(join('docs', 'images'), { recursive: true });
      copyFileSync(join(SHOTS, 'pending-readme-1280.png'), join('docs', 'images', 'console-pending.png'));
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: join('docs', 'images', 'console-pending-phone.png') });
      await page.setViewportSize({ width: 1280, height: 800 });
    }
    writeFileSync(join(SHOTS, 'README.txt'), 'Screenshots written by test/console/browser.test.ts (desktop 1280x800, phone 390x844).\n');
  });

  test('sign out: the session no longer works', async () => {
    const cookie = (await ctx.cookies()).find((c) => c.name === 'cardlink_console');
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');
    await page.goto(`${url}/console/pending`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/console\/login\?done=signed-out/);
    await page.goto(`${url}/console/pending`);
    await page.waitForURL(/\/console\/login/);
    const replay = await send({ base: url, ca: readFileSync(caFile, 'utf8') }, 'GET', '/console/pending', { cookie: `cardlink_console=${cookie.value}` });
    assert.equal(replay.status, 303);
    assert.equal((await client.raw('GET', '/api/v1/tokens', { bearer: cookie.value })).status, 401);
  });
});
