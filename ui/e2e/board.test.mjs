// End-to-end tests of the board in a real browser (Chromium through
// playwright-core) against a real `vigil serve`: sign-in, live rows with the
// right NEWS2, an alert acknowledged with a reason and its audit trail, what a
// CRA of another site never sees, recovery after a server restart, step-up
// re-authentication, hostile ids, both languages and a phone viewport.
//
//   cd ui && npm ci && node --test e2e/
//
// The processes, tokens and browser come from harness.mjs (VIGIL_BIN,
// CHROMIUM: see there). Screenshots land in e2e/out/.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  BIN, DETERIORATING, NORMAL, SITE, SLIGHTLY_OFF, TRIAL, WAIT,
  cell, launchBrowser, newPage as openPage, openBoard, row, run, screenshot, sleep, startVigil,
} from './harness.mjs';

let server;
let base;
let env;
let browser;
const tokens = {};

const postReading = (patient, vitals, opts) => server.postReading(patient, vitals, opts);
const waitScored = (readingId, ms) => server.waitScored(readingId, ms);
const newPage = (t, allowed, opts) => openPage(browser, t, allowed, opts);

// NEWS2 3 (RR 26) + 3 (SpO2 90) + 3 (SBP 88) + 3 (HR 135) + 3 (voice) + 2 (39.5 °C) = 17.
const CRITICAL = DETERIORATING;

// The demo-like protocol of these tests: the site list the overview and the
// site switcher read, and no re-authentication (one test adds it).
const protocol = (extra = {}) => ({
  trial_id: TRIAL,
  title: 'T008 (e2e)',
  sites: ['S01', 'S02'],
  // Compound durations, as the server writes them back ("1h30m0s").
  schedule: { every: '1h30m', grace: '30m' },
  escalation: { tiers: [{ name: 'site', after: '10m', channels: [{ kind: 'board' }] }], repeat: '15m' },
  ...extra,
});

before(async () => {
  server = await startVigil();
  ({ base, env } = server);
  await server.putProtocol(protocol());
  tokens.pi = await server.staffToken('pi', [`${TRIAL}/${SITE}`], { sub: 'u1', name: 'Dr Ada Okafor' });
  tokens.cra2 = await server.staffToken('cra', [`${TRIAL}/S02`], { sub: 'u-cra-s02', name: 'Sam Lindqvist' });
  tokens.oncall = await server.staffToken('oncall', [], { sub: 'u-oncall', name: 'Li Wei' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

// seenAt resolves to the page's Date.now() at the moment a cell of patient
// first shows value (a MutationObserver, so the time is not a polling step).
function watchCell(page, patient, field, value) {
  return page.evaluate(
    ({ patient, field, value }) =>
      new Promise((resolve) => {
        const sel = `#patients tr[data-patient="${CSS.escape(patient)}"] [data-field="${field}"][data-value="${value}"]`;
        if (document.querySelector(sel)) return resolve(Date.now());
        const obs = new MutationObserver(() => {
          if (document.querySelector(sel)) {
            obs.disconnect();
            resolve(Date.now());
          }
        });
        obs.observe(document.body, { subtree: true, childList: true, attributes: true });
      }),
    { patient, field, value: String(value) },
  );
}

async function auditActions(alertId) {
  const res = await fetch(`${base}/v1/audit?alert_id=${encodeURIComponent(alertId)}`, { headers: { Authorization: `Bearer ${tokens.pi}` } });
  assert.equal(res.status, 200);
  return (await res.json()).records;
}

describe('board', () => {
  test('a PI signs in; readings appear live within a second with the right NEWS2', { timeout: 90_000 }, async (t) => {
    const { page, problems } = await newPage(t);
    await page.goto(`${base}/#token=${tokens.pi}`);

    // The token leaves the address bar at once and lives in sessionStorage.
    await page.waitForFunction(() => !location.hash.includes('token='));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vigil.token')), tokens.pi);
    // A PI with one site lands on it.
    await page.waitForFunction(() => location.hash === '#/site/T008/S01');
    await page.locator('#patients').waitFor();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    assert.match(await page.locator('.who').innerText(), /Dr Ada Okafor/);

    const seen = watchCell(page, 'P1002', 'news2', 17);
    const t0 = Date.now();
    const bad = await postReading('P1002', CRITICAL);
    const latency = (await seen) - t0;
    t.diagnostic(`POST → board row: ${latency} ms`);
    assert.ok(latency < 1000, `the reading reached the board in ${latency} ms, not within a second`);

    await postReading('P1001', NORMAL);
    await cell(page, 'P1001', 'news2').and(page.locator('[data-value="0"]')).waitFor({ timeout: WAIT });
    const scored = await waitScored(bad.reading_id);
    assert.equal(scored.score.news2.band, 'high');
    await cell(page, 'P1002', 'risk').and(page.locator(`[data-value="${scored.score.risk}"]`)).waitFor();
    assert.match(await cell(page, 'P1002', 'risk').innerText(), new RegExp(scored.score.risk, 'i'), 'risk shown as text, not colour alone');

    // Vitals with their NEWS2 sub-scores, written out as well as shaded.
    for (const [field, value, sub] of [['rr', '26', '3'], ['spo2', '90', '3'], ['bp', '88/54', '3'], ['hr', '135', '3'], ['temp', '39.5', '2']]) {
      const c = cell(page, 'P1002', field);
      assert.equal(await c.getAttribute('data-value'), value, field);
      assert.equal(await c.getAttribute('data-subscore'), sub, `${field} sub-score`);
      assert.match(await c.innerText(), new RegExp(`\\+${sub}`), `${field} shows +${sub}`);
    }
    assert.equal(await cell(page, 'P1002', 'consciousness').getAttribute('data-value'), 'voice');
    assert.match(await cell(page, 'P1002', 'consciousness').innerText(), /^V/);
    assert.match(await cell(page, 'P1002', 'news2').getAttribute('title'), /Respiration rate: 3/);

    // Highest risk first; another column sorts with the keyboard.
    const order = () => page.locator('#patients tbody tr[data-patient]').evaluateAll((trs) => trs.map((tr) => tr.dataset.patient));
    await page.mouse.move(0, 0);
    assert.deepEqual(await order(), ['P1002', 'P1001']);
    await page.locator('button[data-sort="patient"]').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#patients tbody tr[data-patient]')?.dataset.patient === 'P1001');
    assert.equal(await page.locator('th[aria-sort]').locator('button').getAttribute('data-sort'), 'patient');
    await page.locator('button[data-sort="risk"]').click();
    await page.mouse.move(0, 0);
    await page.waitForFunction(() => document.querySelector('#patients tbody tr[data-patient]')?.dataset.patient === 'P1002');

    // Local time on the page, UTC on hover.
    const measured = cell(page, 'P1002', 'measured_at').locator('time');
    assert.match(await measured.getAttribute('title'), /UTC/);
    assert.equal(Date.parse(await measured.getAttribute('datetime')), Date.parse(bad.measured_at));

    // An unregistered patient (no registry record) is marked.
    await cell(page, 'P1002', 'unregistered').waitFor();
    // Overdue after the protocol's schedule plus grace (1h30m + 30m).
    assert.match(await page.locator('.patients-panel .panel-head').innerText(), /no reading for 2 h/);

    await screenshot(page, 'site-board-first-readings.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('a critical reading raises an alert; the PI acknowledges it with a reason and the audit trail shows it', { timeout: 90_000 }, async (t) => {
    const { page, problems } = await newPage(t);
    await openBoard(page, base, tokens.pi);
    await postReading('P1010', CRITICAL);

    const item = page.locator('#alerts li[data-alert-id][data-patient="P1010"]');
    await item.waitFor({ timeout: WAIT });
    const alertId = await item.getAttribute('data-alert-id');
    assert.equal(await item.getAttribute('data-severity'), 'critical');
    assert.match(await item.innerText(), /NEWS2 high/);
    await cell(page, 'P1010', 'alert').waitFor();
    // Looked at, the board shows the alert; no notification pops up.
    assert.deepEqual(await page.evaluate(() => window.__vigilNotes), []);
    // In a background tab, a critical alert notifies: ids and severity only,
    // never vitals.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await postReading('P1011', CRITICAL);
    await page.waitForFunction(() => window.__vigilNotes.some((n) => n.body.includes('P1011')), null, { timeout: WAIT });
    const notes = await page.evaluate(() => window.__vigilNotes);
    assert.equal(notes.length, 1, JSON.stringify(notes));
    assert.match(notes[0].title, /Critical/);
    assert.ok(!/135|39\.5|Ada/.test(`${notes[0].title} ${notes[0].body}`), 'no vitals or names in notifications');
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    });

    // The alert queue lists it; acknowledge from there.
    await page.click('#nav-alerts');
    const card = page.locator(`#queue-list li[data-alert-id="${alertId}"]`);
    await card.waitFor({ timeout: WAIT });
    assert.equal(await card.getAttribute('data-status'), 'open');
    await screenshot(page, 'alert-queue-acknowledge.png', { fullPage: false });
    await card.locator('button[data-action="ack"]').click();
    const dialog = page.locator('dialog#act-ack');
    await dialog.waitFor();
    // A signature needs a reason: the form says so instead of sending.
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.locator('.error[data-field="reason"]').waitFor();
    assert.match(await dialog.locator('.signature').innerText(), /Dr Ada Okafor/);
    await dialog.locator('textarea[name="reason"]').fill('Called the participant; reviewing at the site.');
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator(`#queue-list li[data-alert-id="${alertId}"][data-status="acknowledged"]`).waitFor({ timeout: WAIT });
    assert.match(await card.innerText(), /Acknowledged by\s+Dr Ada Okafor/);

    // The audit trail records who, what and why: on the server…
    const records = await auditActions(alertId);
    const ack = records.find((r) => r.action === 'alert.acknowledged');
    assert.ok(ack, `no acknowledgement in ${JSON.stringify(records.map((r) => r.action))}`);
    assert.equal(ack.reason, 'Called the participant; reviewing at the site.');
    // …and in the patient view.
    await card.locator('a.qpatient').click();
    await page.waitForFunction(() => location.hash === '#/patient/T008/S01/P1010');
    const trailItem = page.locator(`#patient-alerts li[data-alert-id="${alertId}"]`);
    await trailItem.waitFor({ timeout: WAIT });
    const trail = trailItem.locator('.audit-trail');
    if (!(await trail.count())) await trailItem.locator('button, summary').filter({ hasText: /audit/i }).first().click();
    await trail.locator('[data-action="alert.acknowledged"]').waitFor({ timeout: WAIT });
    assert.match(await trail.innerText(), /Called the participant; reviewing at the site\./);
    await screenshot(page, 'patient-view.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('a CRA of another site never sees the alert, the patient or a request for them', { timeout: 60_000 }, async (t) => {
    await postReading('P2001', NORMAL, { site: 'S02' });
    const crit = await postReading('P1020', CRITICAL);
    await waitScored(crit.reading_id);
    const { page, problems } = await newPage(t);
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${base}/#token=${tokens.cra2}`);
    await page.waitForFunction(() => location.hash === '#/site/T008/S02');
    await cell(page, 'P2001', 'news2').waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    assert.equal(await row(page, 'P1020').count(), 0);

    await page.click('#nav-alerts');
    await page.locator('#queue-list').waitFor();
    await sleep(500);
    assert.equal(await page.locator('#queue-list li[data-patient="P1020"]').count(), 0);
    assert.equal(await page.locator('#queue-list li[data-alert-id]').count(), 0);

    // Typing another site's address shows a refusal, and asks nothing of it.
    await page.evaluate(() => (location.hash = '#/site/T008/S01'));
    await page.getByRole('alert').filter({ hasText: /does not give access/ }).waitFor();
    await page.evaluate(() => (location.hash = '#/patient/T008/S01/P1020'));
    await page.getByRole('alert').filter({ hasText: /does not give access/ }).waitFor();
    await sleep(300);
    const leaks = requested.filter((u) => /S01|P1020/.test(u));
    assert.deepEqual(leaks, [], 'no request for another site');
    const rooms = await page.evaluate(() => Object.keys(window.__vigil.rooms));
    assert.deepEqual(rooms, ['site:T008:S02']);
    await screenshot(page, 'cra-other-site.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('after a server restart the board recovers every missed event without a reload', { timeout: 90_000 }, async (t) => {
    const { page, problems } = await newPage(t, [/WebSocket/, /Failed to load resource/, /ERR_CONNECTION_REFUSED/]);
    await openBoard(page, base, tokens.pi);
    await page.evaluate(() => (window.__notReloaded = true));
    const before = await postReading('P1030', NORMAL);
    await cell(page, 'P1030', 'news2').and(page.locator('[data-value="0"]')).waitFor({ timeout: WAIT });

    // Held down across the restart, so the board can learn of these only
    // by recovering them.
    await page.evaluate(() => window.__vigil.dropConnection({ hold: true }));
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: WAIT });
    await page.locator('#stale-banner').waitFor();
    await server.restart();
    const missed = [
      await postReading('P1030', SLIGHTLY_OFF),
      await postReading('P1031', CRITICAL),
      await postReading('P1032', NORMAL),
    ];
    for (const m of missed) await waitScored(m.reading_id);
    assert.equal(await row(page, 'P1031').count(), 0, 'nothing arrives while disconnected');

    await page.evaluate(() => window.__vigil.reconnect());
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await cell(page, 'P1030', 'news2').and(page.locator('[data-value="3"]')).waitFor({ timeout: WAIT });
    await cell(page, 'P1031', 'news2').and(page.locator('[data-value="17"]')).waitFor({ timeout: WAIT });
    await cell(page, 'P1032', 'news2').and(page.locator('[data-value="0"]')).waitFor({ timeout: WAIT });
    await page.locator('#alerts li[data-patient="P1031"]').waitFor({ timeout: WAIT });
    await page.locator('#stale-banner').waitFor({ state: 'detached' });
    // The in-process bus restarted its offsets: the hub said so (a new
    // epoch), and the board took a snapshot instead of trusting a replay.
    const sub = await page.evaluate(() => window.__vigil.lastSubscribed);
    assert.equal(sub.recovered, false, JSON.stringify(sub));
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
    assert.notEqual(before.reading_id, missed[0].reading_id);

    // And a restart without the hold: the board reconnects by itself.
    await server.restart();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30_000 });
    const later = await postReading('P1032', SLIGHTLY_OFF);
    await cell(page, 'P1032', 'news2').and(page.locator('[data-value="3"]')).waitFor({ timeout: WAIT });
    assert.equal((await waitScored(later.reading_id)).score.news2.total, 3);
    assert.equal(await page.evaluate(() => window.__notReloaded), true);
    await screenshot(page, 'restart-recovered.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('hostile text (a reason, an address) renders as text; the policy is strict', { timeout: 60_000 }, async (t) => {
    const hostile = '<img src=x onerror="window.__xss=1">';
    const crit = await postReading('P1060', CRITICAL);
    await waitScored(crit.reading_id);
    const list = await (await fetch(`${base}/v1/alerts?trial=${TRIAL}&site=${SITE}&status=open`, { headers: { Authorization: `Bearer ${tokens.pi}` } })).json();
    const alert = list.alerts.find((a) => a.patient_id === 'P1060');
    const res = await fetch(`${base}/v1/alerts/${alert.alert_id}/ack`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tokens.pi}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: hostile }),
    });
    assert.equal(res.status, 200, await res.text());

    const { page, problems } = await newPage(t);
    await openBoard(page, base, tokens.pi);
    await page.click('#nav-alerts');
    await page.locator(`#queue-list li[data-alert-id="${alert.alert_id}"]`).filter({ hasText: hostile }).waitFor({ timeout: WAIT });
    // An address naming a hostile site is refused, and shown as text.
    await page.evaluate((h) => (location.hash = `#/site/T008/${encodeURIComponent(h)}`), hostile);
    await page.getByRole('alert').filter({ hasText: hostile }).waitFor();
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    // The strict policy: no inline script but the import map, no framing.
    const index = await fetch(`${base}/`);
    const csp = index.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self' 'sha256-[^']+'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await screenshot(page, 'hostile-text.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('a trial that requires a recent sign-in asks for one before a signature', { timeout: 60_000 }, async (t) => {
    await server.putProtocol(protocol({ require_auth_within: '12h' }));
    t.after(() => server.putProtocol(protocol()));
    const stale = await server.staffToken('pi', [`${TRIAL}/${SITE}`], { sub: 'u1', name: 'Dr Ada Okafor', authAge: '13h' });
    const { page, problems } = await newPage(t, [/401/]);
    await openBoard(page, base, stale);
    await postReading('P1040', CRITICAL);
    const item = page.locator('#alerts li[data-alert-id][data-patient="P1040"]');
    await item.waitFor({ timeout: WAIT });
    await item.locator('button[data-action="ack"]').click();
    const dialog = page.locator('dialog#act-ack');
    await dialog.locator('textarea[name="reason"]').fill('Reviewed the readings.');
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.locator('#reauth').waitFor({ timeout: WAIT });
    assert.match(await dialog.locator('.error').innerText(), /recent sign-in/);

    // Someone else's token is refused by the board itself.
    await dialog.locator('textarea[name="fresh"]').fill(tokens.cra2);
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.locator('.error').filter({ hasText: /someone else/ }).waitFor();

    const fresh = await server.staffToken('pi', [`${TRIAL}/${SITE}`], { sub: 'u1', name: 'Dr Ada Okafor' });
    await dialog.locator('textarea[name="fresh"]').fill(fresh);
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.waitFor({ state: 'detached', timeout: WAIT });
    await page.locator('#alerts li[data-patient="P1040"][data-status="acknowledged"]').waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vigil.token')), fresh, 'the fresh token is kept');
    await page.locator('#conn[data-state="live"]').waitFor();
    await screenshot(page, 'step-up.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('in Simplified Chinese on a phone, on-call staff work the queue', { timeout: 60_000 }, async (t) => {
    const crit = await postReading('P1050', CRITICAL);
    await waitScored(crit.reading_id);
    const { page, problems } = await newPage(t, [], { viewport: { width: 390, height: 844 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
    await page.goto(`${base}/#token=${tokens.oncall}`);
    // On-call staff start on the queue; the browser's language decides.
    await page.waitForFunction(() => location.hash === '#/alerts');
    await page.locator('#nav-alerts').filter({ hasText: '警报队列' }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
    const card = page.locator('#queue-list li[data-patient="P1050"]');
    await card.waitFor({ timeout: WAIT });
    assert.match(await card.innerText(), /危急/);
    // No horizontal scrolling on a phone.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth + 1), 'fits the phone');
    // Escalate (unsigned) from the phone.
    await card.locator('button[data-action="escalate"]').click();
    const dialog = page.locator('dialog#act-escalate');
    await dialog.locator('textarea[name="reason"]').fill('无人应答，升级至安全医师');
    await dialog.locator('button[data-submit="escalate"]').click();
    await page.locator('#queue-list li[data-patient="P1050"][data-status="escalated"]').waitFor({ timeout: WAIT });
    await screenshot(page, 'alert-queue-phone-zh.png', { fullPage: false });

    // Switch to English; the choice is remembered.
    await page.selectOption('#lang', 'en');
    await page.locator('#nav-alerts').filter({ hasText: 'Alert queue' }).waitFor();
    await page.reload();
    await page.locator('#nav-alerts').filter({ hasText: 'Alert queue' }).waitFor({ timeout: WAIT });
    assert.deepEqual(problems, []);
  });

  test('a possible SAE is marked from the queue, and its clock outlives the alert', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t);
    await openBoard(page, base, tokens.pi);
    await postReading('P1070', CRITICAL);
    await page.locator('#alerts li[data-patient="P1070"]').waitFor({ timeout: WAIT });
    await page.click('#nav-alerts');
    const card = page.locator('#queue-list li[data-patient="P1070"]');
    await card.locator('button[data-action="possible_sae"]').click();
    const mark = page.locator('dialog#act-possible_sae');
    await mark.locator('textarea[name="reason"]').fill('Admitted to hospital overnight.');
    await mark.locator('button[data-submit="possible_sae"]').click();
    await mark.waitFor({ state: 'detached' });
    const clock = card.locator('[data-field="sae-clock"]');
    await clock.waitFor({ timeout: WAIT });
    assert.match(await clock.innerText(), /SAE report to sponsor:\s+(24 h|23 h \d+ min) left/);
    assert.equal(await card.locator('button[data-action="possible_sae"]').count(), 0, 'marked once');

    // Resolved as an SAE, it leaves the queue; its clock stays in view.
    await card.locator('button[data-action="resolve"]').click();
    const resolve = page.locator('dialog#act-resolve');
    await resolve.locator('input[name="outcome"][value="sae"]').check();
    await resolve.locator('textarea[name="reason"]').fill('Hospitalisation: serious.');
    await resolve.locator('button[data-submit="resolve"]').click();
    await resolve.waitFor({ state: 'detached' });
    await card.waitFor({ state: 'detached', timeout: WAIT });
    const due = page.locator('#reports-due li').filter({ hasText: 'P1070' });
    await due.waitFor({ timeout: WAIT });
    await due.locator('[data-field="sae-clock"]').waitFor();
    // A reload still shows it (from the server, not only this tab's memory).
    await page.reload();
    await page.locator('#reports-due li').filter({ hasText: 'P1070' }).waitFor({ timeout: WAIT });
    await screenshot(page, 'possible-sae.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('ids that are names of JavaScript built-ins are ordinary patients', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t);
    await openBoard(page, base, tokens.pi);
    await postReading('__proto__', CRITICAL);
    await postReading('constructor', NORMAL);
    await cell(page, '__proto__', 'news2').and(page.locator('[data-value="17"]')).waitFor({ timeout: WAIT });
    await cell(page, '__proto__', 'alert').waitFor({ timeout: WAIT });
    await cell(page, 'constructor', 'news2').and(page.locator('[data-value="0"]')).waitFor({ timeout: WAIT });
    assert.equal(await cell(page, 'constructor', 'alert').count(), 0, 'no alert flag from a built-in');
    await screenshot(page, 'builtin-ids.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('offline and back: the board says so, then catches up', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, [/WebSocket/, /ERR_INTERNET_DISCONNECTED/, /Failed to load resource/]);
    await openBoard(page, base, tokens.pi);
    await page.context().setOffline(true);
    await page.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT });
    await page.locator('#stale-banner').waitFor();
    const missed = await postReading('P1080', SLIGHTLY_OFF);
    await waitScored(missed.reading_id);
    await page.context().setOffline(false);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await cell(page, 'P1080', 'news2').and(page.locator('[data-value="3"]')).waitFor({ timeout: WAIT });
    await page.locator('#stale-banner').waitFor({ state: 'detached' });
    await screenshot(page, 'offline-and-back.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('refuses an expired token with a clear message, and signs out', { timeout: 30_000 }, async (t) => {
    const expired = await server.mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u2', '--ttl', '1s');
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
    await screenshot(page, 'expired-token.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test('a token the server rejects says so and does not reconnect forever', { timeout: 30_000 }, async (t) => {
    // Well-formed and unexpired, but signed with another secret: 401 and close 4001.
    const { stdout } = await run(BIN, ['token', '--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u3'], {
      env: { ...env, VIGIL_JWT_SECRET: crypto.randomBytes(32).toString('hex') },
    });
    const { page, problems } = await newPage(t, [/401/, /WebSocket/]);
    await page.goto(`${base}/#token=${stdout.trim()}`);
    await page.getByRole('alert').filter({ hasText: /session has expired/i }).waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT });
    await sleep(2000);
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'offline', 'stays offline');
    await page.getByRole('button', { name: 'Sign in again' }).click();
    await page.locator('#token').waitFor();
    await screenshot(page, 'rejected-token.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });
});
