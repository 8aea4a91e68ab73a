// End-to-end test of the board in a real browser (Chromium through
// playwright-core) against a real `vigil serve`: sign-in from the URL
// fragment, live rows and alerts from readings posted over HTTP, and recovery
// of what was missed while the WebSocket was down.
//
//   cd ui && npm ci && node --test e2e/
//
// VIGIL_BIN: the vigil binary (default ../bin/vigil from ui/; build it with
// `go build -o bin/vigil .`). CHROMIUM: the browser (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.VIGIL_BIN ? path.resolve(process.env.VIGIL_BIN) : path.resolve(uiDir, '../bin/vigil');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(uiDir, 'e2e', 'out');
const TRIAL = 'T008';
const SITE = 'S01';

const WAIT = 15_000;

let server;
let serverLog = '';
let tmp;
let base;
let env;
let browser;
const tokens = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHealthy(url, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`vigil serve exited (${server.exitCode}):\n${serverLog}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${ms} ms:\n${serverLog}`);
    await sleep(100);
  }
}

async function mint(...args) {
  const { stdout } = await run(BIN, ['token', ...args], { env });
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `vigil token printed ${JSON.stringify(stdout)}`);
  return token;
}

function patientToken(patient) {
  return mint('--role', 'patient', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', patient);
}

async function postReading(patient, vitals) {
  const body = {
    reading_id: crypto.randomUUID(),
    patient_id: patient,
    trial_id: TRIAL,
    site_id: SITE,
    measured_at: new Date().toISOString(),
    vitals,
    symptoms: [],
  };
  const res = await fetch(`${base}/v1/readings`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[patient]}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `POST /v1/readings for ${patient}: ${res.status} ${text}`);
  return body;
}

// sitePatients is the REST snapshot the board should agree with.
async function sitePatients() {
  const res = await fetch(`${base}/v1/trials/${TRIAL}/sites/${SITE}/patients`, {
    headers: { Authorization: `Bearer ${tokens.pi}` },
  });
  assert.equal(res.status, 200, `GET patients: ${res.status} ${await res.clone().text()}`);
  return (await res.json()).patients;
}

async function waitScored(readingId, ms = WAIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const p = (await sitePatients()).find((r) => r.reading_id === readingId);
    if (p?.score) return p;
    if (Date.now() > deadline) throw new Error(`reading ${readingId} not scored after ${ms} ms`);
    await sleep(100);
  }
}

const NORMAL = {
  respiratory_rate: 16, spo2: 97, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 122, diastolic_bp: 78, heart_rate: 72, consciousness: 'alert', temperature: 36.8,
};
// NEWS2 3+3+0+3+3+3+2 = 17: high band.
const DETERIORATING = {
  respiratory_rate: 26, spo2: 90, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 88, diastolic_bp: 54, heart_rate: 135, consciousness: 'voice', temperature: 39.5,
};
// NEWS2 2 (RR 21) + 1 (HR 95) = 3: low band, no alert.
const SLIGHTLY_OFF = {
  respiratory_rate: 21, spo2: 96, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 118, diastolic_bp: 74, heart_rate: 95, consciousness: 'alert', temperature: 37.4,
};

before(async () => {
  if (!existsSync(BIN)) {
    throw new Error(`no vigil binary at ${BIN}: run \`go build -o bin/vigil .\` at the repository root, or set VIGIL_BIN`);
  }
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = {
    ...process.env,
    VIGIL_ADDR: `127.0.0.1:${port}`,
    VIGIL_DB: `sqlite://${path.join(tmp, 'vigil.db')}`,
    VIGIL_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    VIGIL_REDIS_URL: '',
    VIGIL_PREDICTOR_ADDR: '',
  };
  server = spawn(BIN, ['serve'], { env, cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (b) => (serverLog += b));
  server.stderr.on('data', (b) => (serverLog += b));
  await waitHealthy(`${base}/healthz`, 20_000);

  tokens.pi = await mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u1');
  for (const p of ['P1001', 'P1002', 'P1003']) tokens[p] = await patientToken(p);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

// newPage opens a page that records script errors and CSP violations.
// allowed: console errors the test expects (a 401 for a rejected token).
async function newPage(t, allowed = []) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 800 } });
  // A Notification the test can see: permission granted, each one recorded.
  await context.addInitScript(() => {
    window.__vigilNotes = [];
    window.Notification = class {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title, opts) { window.__vigilNotes.push({ title, ...opts }); }
    };
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !allowed.some((re) => re.test(m.text()))) {
      problems.push(`console: ${m.text()}`);
    }
  });
  t.after(() => context.close());
  return { page, problems };
}

function row(page, patient) {
  return page.locator(`#patients tr[data-patient="${patient}"]`);
}

function cell(page, patient, field) {
  return row(page, patient).locator(`[data-field="${field}"]`);
}

describe('board', () => {
  test('shows live readings, alerts, and recovers after a dropped connection', { timeout: 90_000 }, async (t) => {
    const { page, problems } = await newPage(t);
    await page.goto(`${base}/#token=${tokens.pi}`);

    // The token leaves the address bar at once and lives in sessionStorage.
    await page.waitForFunction(() => !location.hash.includes('token='));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vigil.token')), tokens.pi);

    // One site in the token: opened directly; else pick it.
    await page.locator('#patients, button[data-site]').first().waitFor({ timeout: WAIT });
    if (await page.locator(`button[data-site="${TRIAL}/${SITE}"]`).count()) {
      await page.click(`button[data-site="${TRIAL}/${SITE}"]`);
    }
    await page.locator('#patients').waitFor();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    assert.match(await page.locator('.who').innerText(), /u1/);

    const normal = await postReading('P1001', NORMAL);
    const bad = await postReading('P1002', DETERIORATING);

    // Rows appear live, with the score the server computed.
    await cell(page, 'P1001', 'news2').and(page.locator('[data-value="0"]')).waitFor({ timeout: WAIT });
    await cell(page, 'P1002', 'news2').and(page.locator('[data-value="17"]')).waitFor({ timeout: WAIT });
    const snapshot = await sitePatients();
    const byId = Object.fromEntries(snapshot.map((p) => [p.patient_id, p]));
    assert.equal(byId.P1001.reading_id, normal.reading_id);
    assert.equal(byId.P1002.reading_id, bad.reading_id);
    assert.equal(byId.P1002.score.news2.band, 'high');
    assert.ok(['high', 'critical'].includes(byId.P1002.score.risk), `risk ${byId.P1002.score.risk}`);

    const risk1 = await cell(page, 'P1001', 'risk');
    const risk2 = await cell(page, 'P1002', 'risk');
    await risk1.and(page.locator(`[data-value="${byId.P1001.score.risk}"]`)).waitFor();
    await risk2.and(page.locator(`[data-value="${byId.P1002.score.risk}"]`)).waitFor();
    assert.match(await risk2.innerText(), new RegExp(byId.P1002.score.risk, 'i'), 'risk shown as text');
    assert.match(await cell(page, 'P1002', 'news2').getAttribute('title'), /Respiration rate: 3/);

    // Vitals follow the score (a score event carries none; the board fetches them).
    await cell(page, 'P1002', 'rr').and(page.locator('[data-value="26"]')).waitFor({ timeout: WAIT });
    assert.equal(await cell(page, 'P1002', 'bp').innerText(), '88/54');
    assert.equal(await cell(page, 'P1002', 'consciousness').innerText(), 'Voice');
    assert.equal(await cell(page, 'P1002', 'temp').innerText(), '39.5');

    // Highest risk first.
    const order = await page.locator('#patients tbody tr[data-patient]').evaluateAll((trs) => trs.map((tr) => tr.dataset.patient));
    assert.deepEqual(order, ['P1002', 'P1001']);

    // The deteriorating patient has an open alert in the feed; the normal one none.
    const alert = page.locator('#alerts li[data-alert-id][data-patient="P1002"]');
    await alert.waitFor({ timeout: WAIT });
    assert.ok((await alert.getAttribute('data-alert-id')).length > 0);
    assert.ok(['medium', 'high', 'critical'].includes(await alert.getAttribute('data-severity')));
    assert.match(await alert.innerText(), /NEWS2 high/);
    assert.equal(await page.locator('#alerts li[data-patient="P1001"]').count(), 0);
    // …and popped up a browser notification: ids and severity, no vitals.
    const notes = await page.evaluate(() => window.__vigilNotes);
    const note = notes.find((n) => n.body.includes('P1002'));
    assert.ok(note, `no notification for P1002 in ${JSON.stringify(notes)}`);
    assert.match(note.title, /CRITICAL|HIGH|MEDIUM/);
    assert.doesNotMatch(note.body, /135|39\.5/);
    // …and is flagged in the table; measured_at shows relative, exact on hover.
    await cell(page, 'P1002', 'alert').waitFor();
    assert.equal(await cell(page, 'P1001', 'alert').count(), 0);
    const measured = cell(page, 'P1002', 'measured_at').locator('time');
    assert.equal(await measured.innerText(), 'just now');
    assert.ok((await measured.getAttribute('title')).includes(bad.measured_at), 'exact time on hover');

    // Drop the WebSocket and keep it down while a reading is scored, so the
    // board can only learn of it by recovery.
    await page.evaluate(() => window.__vigil.dropConnection({ hold: true }));
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: WAIT });
    const missed = await postReading('P1003', SLIGHTLY_OFF);
    const scored = await waitScored(missed.reading_id);
    assert.equal(scored.score.news2.total, 3);
    assert.equal(await row(page, 'P1003').count(), 0, 'nothing arrives while disconnected');

    await page.evaluate(() => window.__vigil.reconnect());
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await cell(page, 'P1003', 'news2').and(page.locator('[data-value="3"]')).waitFor({ timeout: WAIT });
    await cell(page, 'P1003', 'risk').and(page.locator(`[data-value="${scored.score.risk}"]`)).waitFor();
    await cell(page, 'P1003', 'rr').and(page.locator('[data-value="21"]')).waitFor({ timeout: WAIT });
    const sub = await page.evaluate(() => window.__vigil.lastSubscribed);
    assert.equal(sub.recovered, true, `the hub replayed the missed event (subscribed: ${JSON.stringify(sub)})`);

    // A drop without hold reconnects by itself (backoff 0.5 s → 10 s).
    await page.evaluate(() => window.__vigil.dropConnection());
    await page.locator('#conn:not([data-state="live"])').waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    const again = await postReading('P1001', { ...NORMAL, heart_rate: 95 });
    await cell(page, 'P1001', 'hr').and(page.locator('[data-value="95"]')).waitFor({ timeout: WAIT });
    assert.equal((await waitScored(again.reading_id)).score.news2.total, 1);
    await cell(page, 'P1001', 'news2').and(page.locator('[data-value="1"]')).waitFor({ timeout: WAIT });

    await fs.mkdir(OUT, { recursive: true });
    await page.locator('#patients tr.flash-a, #patients tr.flash-b').first().waitFor({ state: 'detached', timeout: WAIT }).catch(() => {});
    await page.screenshot({ path: path.join(OUT, 'board.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  test('refuses an expired token with a clear message, and signs out', { timeout: 30_000 }, async (t) => {
    const expired = await mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u2', '--ttl', '1s');
    await sleep(1500);
    const { page, problems } = await newPage(t);
    await page.goto(`${base}/#token=${expired}`);
    await page.getByRole('alert').filter({ hasText: /expired/i }).waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vigil.token')), null);

    // Paste a good token into the form; then sign out.
    await page.fill('#token', tokens.pi);
    await page.click('button[type="submit"]');
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vigil.token')), null);
    assert.deepEqual(problems, []);
  });

  test('a token the server rejects says so and does not reconnect forever', { timeout: 30_000 }, async (t) => {
    // Well-formed and unexpired, but signed with another secret: 401 and close 4001.
    const { stdout } = await run(BIN, ['token', '--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u3'], {
      env: { ...env, VIGIL_JWT_SECRET: crypto.randomBytes(32).toString('hex') },
    });
    const { page, problems } = await newPage(t, [/401/, /WebSocket/]);
    await page.goto(`${base}/#token=${stdout.trim()}`);
    await page.getByRole('alert').filter({ hasText: /session expired, sign in again/i }).waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT });
    await sleep(2000);
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'offline', 'stays offline');
    await page.getByRole('button', { name: 'Sign in again' }).click();
    await page.locator('#token').waitFor();
    assert.deepEqual(problems, []);
  });
});
