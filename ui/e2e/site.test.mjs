// A site with a day of history, as a PI finds it in the morning: 24-hour
// sparklines, a patient deteriorating over the last hours with an alert, an
// overdue patient, a registered patient on SpO2 scale 2 and unregistered
// ones. It checks what only history shows, and takes the README's pictures
// of the site board, the alert queue and the patient view.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { NORMAL, SITE, TRIAL, WAIT, cell, launchBrowser, newPage, openBoard, screenshot, startVigil } from './harness.mjs';

let server;
let browser;
const HOUR = 3600_000;

// day returns a patient's readings every `every` hours over the last 24,
// each made by vitals(hoursAgo).
function day(patient, every, vitals, { lastHoursAgo = 0 } = {}) {
  const out = [];
  for (let h = 24; h >= lastHoursAgo; h -= every) {
    out.push({
      reading_id: crypto.randomUUID(),
      patient_id: patient,
      trial_id: TRIAL,
      site_id: SITE,
      measured_at: new Date(Date.now() - h * HOUR - 60_000).toISOString(),
      vitals: vitals(h),
      symptoms: [],
    });
  }
  return out;
}

async function postBatch(patient, readings) {
  const token = await server.patientToken(patient);
  const res = await fetch(`${server.base}/v1/readings/batch`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ readings }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  for (const r of body.results) assert.equal(r.result, 'accepted', JSON.stringify(r));
  return readings;
}

// A small, steady variation, so the sparklines are not flat lines.
const wobble = (h, n, amp) => Math.round(amp * Math.sin(h / 3 + n));

before(async () => {
  server = await startVigil({ VIGIL_RATE_PER_PATIENT: '0' });
  await server.putProtocol({
    trial_id: TRIAL,
    sites: [SITE],
    schedule: { every: '2h', grace: '1h' },
    escalation: { tiers: [{ name: 'site', after: '10m', channels: [{ kind: 'board' }] }] },
  });
  // P1003 is registered on SpO2 scale 2 (hypercapnic respiratory failure).
  const admin = await server.staffToken('admin');
  const res = await fetch(`${server.base}/v1/trials/${TRIAL}/sites/${SITE}/patients/P1003`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json', 'X-Vigil-Reason': 'e2e set-up' },
    body: JSON.stringify({ status: 'enrolled', spo2_scale: 2 }),
  });
  assert.equal(res.status, 200, await res.text());

  const steady = (n) => (h) => ({ ...NORMAL, heart_rate: 70 + wobble(h, n, 6), respiratory_rate: 15 + wobble(h, n, 2), systolic_bp: 120 + wobble(h, n, 8), temperature: 36.8 + wobble(h, n, 3) / 10 });
  const posts = [];
  for (let i = 4; i <= 18; i++) posts.push(postBatch(`P10${String(i).padStart(2, '0')}`, day(`P10${String(i).padStart(2, '0')}`, 2, steady(i))));
  // P1001 deteriorates over the last six hours: RR and HR up, SpO2 and BP down, fever.
  posts.push(postBatch('P1001', day('P1001', 1, (h) => {
    const k = Math.max(0, 6 - h) / 6;
    return { ...NORMAL, respiratory_rate: Math.round(16 + 10 * k), spo2: Math.round(97 - 6 * k), systolic_bp: Math.round(124 - 34 * k), heart_rate: Math.round(76 + 56 * k), temperature: Math.round((36.9 + 2.4 * k) * 10) / 10, consciousness: k > 0.9 ? 'new_confusion' : 'alert' };
  })));
  // P1002 stopped reporting five hours ago.
  posts.push(postBatch('P1002', day('P1002', 2, steady(2), { lastHoursAgo: 5 })));
  // P1003 on scale 2: 89 % on air scores 0.
  posts.push(postBatch('P1003', day('P1003', 2, (h) => ({ ...steady(3)(h), spo2: 89 + wobble(h, 3, 1), spo2_scale: 2 }))));
  await Promise.all(posts);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

describe('a site with a day of history', () => {
  test('sparklines, the deteriorating patient first, overdue and scale-2 patients marked; queue and patient view', { timeout: 120_000 }, async (t) => {
    const pi = await server.staffToken('pi', [`${TRIAL}/${SITE}`], { sub: 'u-pi', name: 'Dr Ada Okafor' });
    const { page, problems } = await newPage(browser, t, [], { viewport: { width: 1440, height: 900 } });
    await openBoard(page, server.base, pi);
    await cell(page, 'P1018', 'news2').waitFor({ timeout: WAIT });
    await page.mouse.move(0, 0);

    // The deteriorating patient leads the table, with an alert.
    await page.waitForFunction(() => document.querySelector('#patients tbody tr[data-patient]')?.dataset.patient === 'P1001', null, { timeout: WAIT });
    await cell(page, 'P1001', 'alert').waitFor({ timeout: WAIT });
    assert.equal(await cell(page, 'P1001', 'news2').getAttribute('data-value'), '17');

    // A sparkline under each key vital, from 24 hours of readings.
    await page.locator('#patients tr[data-patient="P1001"] svg.spark').first().waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#patients tr[data-patient="P1001"] svg.spark').count(), 6, 'RR, SpO2, BP, HR, temperature, NEWS2');
    assert.match(await page.locator('#patients tr[data-patient="P1001"] [data-field="hr"] svg.spark').getAttribute('aria-label'), /last 24 hours/);

    // Every row has the one height the table's windowing counts on.
    const heights = await page.locator('#patients tbody tr[data-patient]').evaluateAll((trs) => [...new Set(trs.map((tr) => tr.getBoundingClientRect().height))]);
    assert.deepEqual(heights, [36]);
    // The lines are drawn.
    assert.match(await page.locator('#patients tr[data-patient="P1005"] [data-field="hr"] svg.spark path').getAttribute('d'), /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){5,}$/);

    // Silent for five hours against a two-hour schedule (+1 h grace): overdue.
    await cell(page, 'P1002', 'overdue').waitFor();
    assert.equal(await cell(page, 'P1005', 'overdue').count(), 0);

    // Scale 2 is shown, and 89 % on air scores nothing on it.
    assert.match(await cell(page, 'P1003', 'spo2').innerText(), /S2/);
    assert.equal(await cell(page, 'P1003', 'spo2').getAttribute('data-subscore'), '0');
    assert.equal(await cell(page, 'P1003', 'unregistered').count(), 0, 'registered');
    await cell(page, 'P1004', 'unregistered').waitFor();

    await page.locator('#alerts li[data-patient="P1001"]').waitFor();
    await screenshot(page, 'site-board.png', { fullPage: false });

    await page.click('#nav-alerts');
    await page.locator('#queue-list li[data-patient="P1001"]').waitFor({ timeout: WAIT });
    await screenshot(page, 'alert-queue.png', { fullPage: false });

    await page.locator('#queue-list li[data-patient="P1001"] a.qpatient').click();
    await page.locator('#patient-charts canvas').first().waitFor({ timeout: WAIT });
    await page.locator('#readings tr[data-reading-id]').first().waitFor({ timeout: WAIT });
    assert.ok((await page.locator('#readings tr[data-reading-id]').count()) >= 20);
    await page.locator('#patient-charts').scrollIntoViewIfNeeded();
    await screenshot(page, 'patient-charts.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });
});
