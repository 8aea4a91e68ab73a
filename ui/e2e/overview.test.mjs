// End-to-end test of the trial overview (the safety physician's view) in
// Chromium against a real `vigil serve`: sites × risk, alert counts and
// acknowledgement times per site, the sites whose data stopped arriving, and
// only the sites a token may see.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DETERIORATING, NORMAL, TRIAL, WAIT, launchBrowser, newPage, screenshot, startVigil } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startVigil();
  await server.putProtocol({
    trial_id: TRIAL,
    sites: ['S01', 'S02', 'S03'],
    schedule: { every: '4h', grace: '1h' },
    escalation: { tiers: [{ name: 'site', after: '10m', channels: [{ kind: 'board' }] }] },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

const site = (page, id) => page.locator(`#sites tr[data-site="${id}"]`);
const field = (page, id, f) => site(page, id).locator(`[data-field="${f}"]`);

describe('trial overview', () => {
  test('a safety physician sees every site by risk, its alerts, acknowledgement times and silence', { timeout: 90_000 }, async (t) => {
    await server.postReading('P1001', NORMAL);
    const crit = await server.postReading('P1002', DETERIORATING);
    await server.postReading('P2001', NORMAL, { site: 'S02' });
    await server.waitScored(crit.reading_id);
    const safety = await server.staffToken('safety', [], { sub: 'u-safety', name: 'Dr Priya Raman' });

    const { page, problems } = await newPage(browser, t);
    await page.goto(`${server.base}/#token=${safety}`);
    // Safety physicians start on their trial's overview.
    await page.waitForFunction(() => location.hash === '#/trial/T008');
    await site(page, 'S03').waitFor({ timeout: WAIT });
    assert.deepEqual(await page.locator('#sites tbody tr[data-site]').evaluateAll((trs) => trs.map((tr) => tr.dataset.site)), ['S01', 'S03', 'S02'], 'critical first, then the silent site, then the calm one');

    assert.equal(await field(page, 'S01', 'patients').getAttribute('data-value'), '2');
    assert.equal(await field(page, 'S01', 'critical').getAttribute('data-value'), '1');
    assert.equal(await field(page, 'S01', 'open').getAttribute('data-value'), '1');
    assert.equal(await field(page, 'S02', 'critical').getAttribute('data-value'), '0');
    // The risk bar carries counts as text, not colour alone.
    assert.match(await field(page, 'S01', 'risk').innerText(), /1/);
    assert.match(await field(page, 'S01', 'risk').locator('.riskbar').getAttribute('aria-label'), /Critical 1/);

    // S03 never sent a reading: its data stopped (or never started) arriving.
    assert.equal(await site(page, 'S03').getAttribute('data-stale'), 'true');
    assert.equal(await site(page, 'S01').getAttribute('data-stale'), 'false');
    assert.match(await page.locator('#stale-sites').innerText(), /S03/);
    assert.doesNotMatch(await page.locator('#stale-sites').innerText(), /S01|S02/);
    assert.equal(await field(page, 'S01', 'ack').getAttribute('data-value'), '');

    // An acknowledgement shows up as a time to acknowledge; a new critical
    // alert elsewhere reorders the sites, live.
    const pi = await server.staffToken('pi', [`${TRIAL}/S01`], { sub: 'u-pi', name: 'Dr Ada Okafor' });
    const list = await (await fetch(`${server.base}/v1/alerts?trial=${TRIAL}&site=S01&status=open`, { headers: { Authorization: `Bearer ${pi}` } })).json();
    const res = await fetch(`${server.base}/v1/alerts/${list.alerts[0].alert_id}/ack`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${pi}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'reviewing' }),
    });
    assert.equal(res.status, 200);
    await server.postReading('P2002', DETERIORATING, { site: 'S02' });
    await field(page, 'S02', 'critical').and(page.locator('[data-value="1"]')).waitFor({ timeout: WAIT });
    await field(page, 'S01', 'ack').and(page.locator(':not([data-value=""])')).waitFor({ timeout: WAIT });
    assert.ok(Number(await field(page, 'S01', 'ack').getAttribute('data-value')) >= 0);

    await screenshot(page, 'trial-overview.png', { fullPage: false });

    // Its site link opens that site's board.
    await site(page, 'S02').locator('a').click();
    await page.waitForFunction(() => location.hash === '#/site/T008/S02');
    await page.locator('#patients tr[data-patient="P2002"]').waitFor({ timeout: WAIT });
    assert.deepEqual(problems, []);
  });

  test("a PI's overview lists only the PI's own site", { timeout: 60_000 }, async (t) => {
    const pi = await server.staffToken('pi', [`${TRIAL}/S02`], { sub: 'u-pi2', name: 'Dr Lin' });
    const { page, problems } = await newPage(browser, t);
    await page.goto(`${server.base}/#token=${pi}`);
    await page.waitForFunction(() => location.hash === '#/site/T008/S02');
    await page.evaluate(() => (location.hash = '#/trial/T008'));
    await site(page, 'S02').waitFor({ timeout: WAIT });
    assert.deepEqual(await page.locator('#sites tbody tr[data-site]').evaluateAll((trs) => trs.map((tr) => tr.dataset.site)), ['S02']);
    await screenshot(page, 'trial-overview-pi.png', { fullPage: false });
    assert.deepEqual(problems, []);
  });
});
