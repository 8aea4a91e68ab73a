// End-to-end test of the board in a real browser (Chromium through
// playwright-core) against a real `vigil serve`: sign-in from the URL
// fragment, live rows and alerts from readings posted over HTTP, and recovery
// of what was missed while the WebSocket was down.
//
//   cd ui && npm ci && node --test e2e/
//
// The processes, tokens and browser come from harness.mjs (VIGIL_BIN,
// CHROMIUM: see there).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  BIN, DETERIORATING, NORMAL, SITE, SLIGHTLY_OFF, TRIAL, WAIT,
  cell, launchBrowser, newPage as openPage, row, run, screenshot, sleep, startVigil,
} from './harness.mjs';

let server;
let base;
let env;
let browser;
const tokens = {};

const mint = (...args) => server.mint(...args);
const postReading = (patient, vitals) => server.postReading(patient, vitals);
const sitePatients = () => server.sitePatients();
const waitScored = (readingId, ms) => server.waitScored(readingId, ms);
const newPage = (t, allowed) => openPage(browser, t, allowed);

before(async () => {
  server = await startVigil();
  ({ base, env } = server);
  tokens.pi = await server.token('pi');
  for (const p of ['P1001', 'P1002', 'P1003']) tokens[p] = await server.token(p);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

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

    await screenshot(page, 'board.png');
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
