// End-to-end test of the patient view (#/patient/T/S/P) in Chromium against
// a real `vigil serve`: charts with their NEWS2 bands, the reading history,
// the patient's alert with its signature and audit trail, live readings,
// hostile text rendered as text, and the layout at desktop and phone sizes.
//
//   cd ui && node --test e2e/patient.test.mjs
//
// The processes, tokens and browser come from harness.mjs (VIGIL_BIN,
// CHROMIUM: see there).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  DETERIORATING, NORMAL, SITE, SLIGHTLY_OFF, TRIAL, WAIT, launchBrowser, newPage, screenshot, sleep, startVigil,
} from './harness.mjs';

const PATIENT = 'P2001';
const HOSTILE = '<img src=x onerror=alert(1)>';

let server;
let browser;
let pi; // a PI of T008/S01 with a printed name, so they can sign

// The trial's protocol: a tachycardia limit, so the alert has a finding
// with a vital, value and CTCAE grade.
const PROTOCOL = {
  trial_id: TRIAL,
  sites: [SITE, 'S02'],
  schedule: { every: '8h', grace: '1h' },
  thresholds: { news2_band: 'medium', vitals: [{ vital: 'heart_rate', op: '>=', value: 131, grade: 3, term: 'tachycardia' }], model_probability: 0.5 },
  escalation: { tiers: [{ name: 'site', after: '15m', channels: [{ kind: 'board' }] }] },
};

before(async () => {
  server = await startVigil();
  pi = await server.mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u9', '--name', 'Dr Ada Lovelace');
  const admin = await server.mint('--role', 'admin', '--trial', TRIAL, '--sub', 'a1', '--name', 'Admin');
  const res = await fetch(`${server.base}/v1/trials/${TRIAL}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', 'X-Vigil-Reason': 'e2e setup' },
    body: JSON.stringify(PROTOCOL),
  });
  assert.ok(res.ok, `PUT protocol: ${res.status} ${await res.text()}`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

async function api(method, path, body) {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${pi}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// postAt posts a reading of PATIENT measured minutesAgo minutes ago.
async function postAt(vitals, minutesAgo) {
  const body = {
    reading_id: crypto.randomUUID(),
    patient_id: PATIENT,
    trial_id: TRIAL,
    site_id: SITE,
    measured_at: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
    vitals,
    symptoms: minutesAgo > 20 ? [] : [{ term: 'nausea', grade: 2 }],
  };
  const res = await fetch(`${server.base}/v1/readings`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await server.token(PATIENT)}` },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 202, `POST /v1/readings: ${res.status} ${await res.text()}`);
  return body;
}

// until polls f until it returns a truthy value.
async function until(what, f, ms = WAIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const readingsPath = `/v1/trials/${TRIAL}/sites/${SITE}/patients/${PATIENT}/readings`;
const patientHash = (p) => `#/patient/${TRIAL}/${SITE}/${encodeURIComponent(p)}`;

// openPatient opens a link to the patient view in a tab already signed in
// (the token in sessionStorage, where sign-in keeps it).
async function openPatient(page, token, patient = PATIENT) {
  await page.addInitScript((tok) => sessionStorage.setItem('vigil.token', tok), token);
  await page.goto(`${server.base}/${patientHash(patient)}`);
}

describe('patient view', () => {
  test('charts, history, alert with audit trail, live readings, phone layout', { timeout: 120_000 }, async (t) => {
    const normal = await postAt(NORMAL, 50);
    const off = await postAt(SLIGHTLY_OFF, 30);
    const bad = await postAt(DETERIORATING, 10);
    const expected = { [normal.reading_id]: 0, [off.reading_id]: 3, [bad.reading_id]: 17 };
    await until('three scored readings', async () => {
      const { readings } = await api('GET', readingsPath);
      return readings.length === 3 && readings.every((r) => r.score);
    });
    const alert = await until('the alert', async () => (await api('GET', `/v1/alerts?trial=${TRIAL}&site=${SITE}&patient=${PATIENT}`)).alerts[0]);

    const { page, problems } = await newPage(browser, t);
    page.on('dialog', (d) => {
      problems.push(`dialog opened: ${d.message()}`);
      d.dismiss();
    });
    await page.setViewportSize({ width: 1280, height: 800 });
    await openPatient(page, pi);
    const view = page.locator(`section#patient-view[data-patient="${PATIENT}"]`);
    await view.waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });

    // History: newest first, with the NEWS2 the server computed.
    const rows = page.locator('table#readings tr[data-reading-id]');
    await until('three rows', async () => (await rows.count()) === 3);
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.readingId));
    assert.deepEqual(ids, [bad.reading_id, off.reading_id, normal.reading_id]);
    for (const id of ids) {
      const news2 = page.locator(`tr[data-reading-id="${id}"] [data-field="news2"]`);
      assert.equal(await news2.getAttribute('data-value'), String(expected[id]), `NEWS2 of ${id}`);
    }
    const badRow = page.locator(`tr[data-reading-id="${bad.reading_id}"]`);
    assert.match(await badRow.locator('[data-field="news2"]').innerText(), /17\s+high/);
    assert.match(await badRow.locator('[data-field="respiratory_rate"]').innerText(), /26\s+NEWS2\s+\+3/);
    assert.match(await badRow.locator('[data-field="symptoms"]').innerText(), /Nausea: moderate \(2\)/);

    // Charts: a canvas per vital, NEWS2 and the model, bands painted and labelled.
    const charts = page.locator('#patient-charts');
    for (const id of ['rr', 'spo2', 'bp', 'hr', 'temp', 'news2']) {
      const fig = charts.locator(`#chart-${id}`);
      await fig.locator('canvas').waitFor();
      await until(`bands of ${id}`, async () => Number(await fig.getAttribute('data-bands')) >= 2);
      assert.equal(await fig.getAttribute('data-points'), '3', `points of ${id}`);
    }
    // No predictor in this test: the model chart says so instead of drawing zeros.
    assert.match(await charts.locator('#chart-model').innerText(), /No model probability/);
    assert.equal(await page.locator('#model-panel').getAttribute('data-state'), 'none');

    // The alert, open, with its findings; then acknowledged over REST with a
    // hostile reason, which must show as text in the signature and the trail.
    const item = page.locator(`#patient-alerts li[data-alert-id="${alert.alert_id}"]`);
    await item.and(page.locator('[data-status="open"]')).waitFor();
    assert.match(await item.innerText(), /NEWS2 high/);
    assert.match(await item.innerText(), /Protocol vital limit · Pulse 135 \/min · CTCAE grade 3/);
    await item.locator('button', { hasText: 'Show audit trail' }).click();
    await item.locator('.audit-trail [data-action="opened"]').waitFor();

    await api('POST', `/v1/alerts/${alert.alert_id}/ack`, { reason: HOSTILE });
    await item.and(page.locator('[data-status="acknowledged"]')).waitFor({ timeout: WAIT });
    const ack = item.locator('.audit-trail [data-action="alert.acknowledged"]');
    await ack.waitFor({ timeout: WAIT });
    assert.ok((await ack.innerText()).includes(HOSTILE), 'the reason shows as typed');
    assert.match(await ack.innerText(), /Dr Ada Lovelace/);
    assert.match(await ack.innerText(), /Status: Open →\s+(changed to\s+)?Acknowledged/);
    const sig = item.locator('[data-signature="acknowledged"]');
    assert.ok((await sig.innerText()).includes(HOSTILE));
    assert.match(await sig.innerText(), /Dr Ada Lovelace \(Principal investigator\)/);
    assert.equal(await page.locator('#patient-view img').count(), 0, 'no element made from the reason');

    // Marked possible SAE: the signature and the 24-hour reporting clock.
    await api('POST', `/v1/alerts/${alert.alert_id}/possible-sae`, { reason: 'Admitted to hospital overnight.' });
    await item.locator('[data-signature="possible_sae"]').waitFor({ timeout: WAIT });
    await item.locator('[data-field="sae-clock"]').waitFor();
    await item.locator('.audit-trail [data-action="alert.possible_sae"]').waitFor({ timeout: WAIT });

    // Live: a reading posted now appears in the history and on the charts.
    const live = await postAt(NORMAL, 0);
    const liveRow = page.locator(`tr[data-reading-id="${live.reading_id}"]`);
    await liveRow.locator('[data-field="news2"][data-value="0"]').waitFor({ timeout: WAIT });
    assert.equal(await rows.first().getAttribute('data-reading-id'), live.reading_id, 'newest first');
    await charts.locator('#chart-rr[data-points="4"]').waitFor();
    await charts.locator('#chart-news2[data-points="4"]').waitFor();

    // The chart is keyboard-operable: End reads out the newest point.
    await charts.locator('#chart-rr .pv-plot').focus();
    await page.keyboard.press('End');
    await until('the read-out', async () => /Respiration rate: 16/.test(await charts.locator('#chart-rr [aria-live]').innerText()));

    // A longer period loads again and keeps the same readings.
    await page.click('#patient-charts button[data-range="7d"]');
    await page.locator('#patient-charts button[data-range="7d"][aria-pressed="true"]').waitFor();
    await until('four rows after reload', async () => (await rows.count()) === 4);

    await screenshot(page, 'patient-desktop.png');

    // Phone: one column, charts as wide as the screen, no page-wide sideways scroll.
    await page.setViewportSize({ width: 390, height: 844 });
    await until('charts resized', async () => {
      const w = await charts.locator('#chart-rr canvas').evaluate((c) => c.getBoundingClientRect().width);
      return w > 200 && w <= 390;
    });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at 390px`);
    await screenshot(page, 'patient-phone.png');

    assert.deepEqual(problems, []);
  });

  test('a hostile patient id is refused by ingest and shown as text in the view', { timeout: 60_000 }, async (t) => {
    const hostileToken = await server.patientToken(HOSTILE);
    const res = await fetch(`${server.base}/v1/readings`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${hostileToken}` },
      body: JSON.stringify({
        reading_id: crypto.randomUUID(), patient_id: HOSTILE, trial_id: TRIAL, site_id: SITE,
        measured_at: new Date().toISOString(), vitals: NORMAL,
      }),
    });
    assert.ok([400, 422].includes(res.status), `ingest answered ${res.status}`);

    const { page, problems } = await newPage(browser, t);
    page.on('dialog', (d) => {
      problems.push(`dialog opened: ${d.message()}`);
      d.dismiss();
    });
    await openPatient(page, pi, HOSTILE);
    const view = page.locator('section#patient-view');
    await view.waitFor({ timeout: WAIT });
    assert.equal(await view.getAttribute('data-patient'), HOSTILE);
    assert.ok((await page.locator('#pv-title').innerText()).includes(HOSTILE));
    await page.locator('table#readings tr.pv-none').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#patient-view img').count(), 0);
    await screenshot(page, 'patient-hostile-id.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });

  test("another site's patient is not shown", { timeout: 60_000 }, async (t) => {
    const other = await server.mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/S02`, '--sub', 'u8', '--name', 'Dr B');
    const { page } = await newPage(browser, t);
    await openPatient(page, other);
    await page.locator('#main [role="alert"]').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('table#readings tr[data-reading-id]').count(), 0);
    await screenshot(page, 'patient-other-site.png', { fullPage: false });
  });
});
