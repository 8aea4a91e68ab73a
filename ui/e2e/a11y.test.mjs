// Accessibility of the board in a real browser: axe-core (WCAG 2.0/2.1 A and
// AA rules: contrast, names, roles, structure) over every view, in both
// languages and at desktop and phone sizes, and the keyboard paths a person
// without a mouse takes (skip link, navigation, sorting, a patient, the
// action dialog and back).
//
//   cd ui && node --test e2e/a11y.test.mjs
//
// axe runs inside the page. The board's policy allows no inline script (only
// the import map, by its hash), so page.addScriptTag({ path }) — which
// injects the file's text as an inline <script> — is refused; instead the
// file's text is evaluated through the DevTools protocol (page.evaluate),
// which the page's policy does not govern. The page itself keeps its policy:
// no bypassCSP, so what axe sees is what a person's browser renders.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import {
  DETERIORATING, NORMAL, SITE, SLIGHTLY_OFF, TRIAL, WAIT, launchBrowser, newPage as openPage, screenshot, sleep, startVigil,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };

// NEWS2 2 (RR 23) + 1 (SpO2 94) + 1 (HR 105) + 1 (38.5 °C) = 5: medium band.
const MEDIUM = {
  respiratory_rate: 23, spo2: 94, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 112, diastolic_bp: 70, heart_rate: 105, consciousness: 'alert', temperature: 38.5,
};

let server;
let base;
let browser;
let axeSource;
const tokens = {};
let ackedAlert; // acknowledged and marked possible SAE: the SAE clock shows

const newPage = (t, opts) => openPage(browser, t, [], opts);

async function alertsOf(patient, token, site) {
  const res = await fetch(`${base}/v1/alerts?trial=${TRIAL}&site=${site}&patient=${patient}`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).alerts;
}

async function waitAlert(patient, token, site = SITE) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const list = await alertsOf(patient, token, site);
    if (list.length) return list[0];
    if (Date.now() > deadline) throw new Error(`no alert for ${patient} after ${WAIT} ms`);
    await sleep(100);
  }
}

// postAt posts a reading measured minutesAgo minutes ago (an overdue
// patient, a silent site).
async function postAt(patient, vitals, minutesAgo, site = SITE) {
  const body = {
    reading_id: crypto.randomUUID(),
    patient_id: patient,
    trial_id: TRIAL,
    site_id: site,
    measured_at: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
    vitals,
    symptoms: [],
  };
  const token = await server.patientToken(patient, TRIAL, site);
  const res = await fetch(`${base}/v1/readings`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 202, `POST /v1/readings for ${patient}: ${res.status} ${await res.text()}`);
  return body;
}

async function act(alertId, action, body) {
  const res = await fetch(`${base}/v1/alerts/${alertId}/${action}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${tokens.pi}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, `${action}: ${await res.text()}`);
}

before(async () => {
  server = await startVigil();
  ({ base } = server);
  await server.putProtocol({
    trial_id: TRIAL,
    title: 'T008 (a11y)',
    sites: ['S01', 'S02'],
    schedule: { every: '4h', grace: '1h' },
    escalation: { tiers: [{ name: 'site', after: '10m', channels: [{ kind: 'board' }] }], repeat: '15m' },
  });
  tokens.pi = await server.staffToken('pi', [`${TRIAL}/${SITE}`], { sub: 'u1', name: 'Dr Ada Okafor' });
  tokens.oncall = await server.staffToken('oncall', [], { sub: 'u-oncall', name: 'Li Wei' });
  tokens.safety = await server.staffToken('safety', [], { sub: 'u-safety', name: 'Dr Noor Haddad' });

  // Every risk and sub-score shade, a partial NEWS2, an overdue patient,
  // alerts in each state, and a site whose data stopped (S02: its newest
  // reading is older than the schedule's 4 h + 1 h).
  const { temperature: _, ...noTemperature } = NORMAL;
  const readings = [
    ['P1001', NORMAL, 0, SITE],
    ['P1002', DETERIORATING, 0, SITE],
    ['P1003', SLIGHTLY_OFF, 0, SITE],
    ['P1004', MEDIUM, 0, SITE],
    ['P1005', DETERIORATING, 0, SITE],
    ['P1006', DETERIORATING, 0, SITE],
    ['P1007', NORMAL, 6 * 60, SITE],
    ['P1008', noTemperature, 0, SITE],
    ['P2001', NORMAL, 6 * 60, 'S02'],
    ['P2002', DETERIORATING, 6 * 60, 'S02'],
  ];
  const posted = [];
  for (const [p, v, ago, site] of readings) posted.push(await postAt(p, v, ago, site));
  for (const b of posted.filter((b) => b.site_id === SITE)) await server.waitScored(b.reading_id);

  ackedAlert = await waitAlert('P1005', tokens.pi);
  await act(ackedAlert.alert_id, 'ack', { reason: 'Called the participant.' });
  await act(ackedAlert.alert_id, 'possible-sae', { reason: 'Hospitalised overnight.' });
  const escalated = await waitAlert('P1006', tokens.pi);
  await act(escalated.alert_id, 'escalate', { reason: 'No answer at the site.' });
  await waitAlert('P1002', tokens.pi);
  await waitAlert('P2002', tokens.oncall, 'S02');

  axeSource = await readFile(AXE_PATH, 'utf8');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

// settle waits until nothing moves: the connection is live (a board that is
// not live is dimmed), no row flashes, the pointer rests off the page.
async function settle(page, { live = true } = {}) {
  await page.mouse.move(0, 0);
  if (live) await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT }).catch(() => {});
  await page.locator('tr.flash-a, tr.flash-b').first().waitFor({ state: 'detached', timeout: WAIT }).catch(() => {});
  await sleep(300);
}

// checkA11y runs axe over the page (or one element of it) and fails with
// each violation's rule, impact, elements and what is wrong. What axe could
// not decide (its "incomplete" results: a background under an overlapping
// element, a symbol whose contrast it will not judge) is reported as a
// diagnostic for a person to review. Each checked state is saved as
// e2e/out/a11y-*.png.
async function checkA11y(t, page, where, { include, live } = {}) {
  await settle(page, { live });
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const { violations, incomplete } = await page.evaluate(
    async ({ tags, include }) => {
      const r = await window.axe.run(include ? { include: [include] } : document, {
        runOnly: { type: 'tag', values: tags },
        resultTypes: ['violations', 'incomplete'],
      });
      const brief = (v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary || '' })),
      });
      return { violations: r.violations.map(brief), incomplete: r.incomplete.map(brief) };
    },
    { tags: TAGS, include },
  );
  await screenshot(page, `a11y-${where.replace(/[^\w-]+/g, '-')}.png`, { fullPage: false });
  const text = (list) =>
    list
      .map((v) => `${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `  ${n.target}\n    ${n.summary.replace(/\n/g, '\n    ')}`).join('\n')}`)
      .join('\n');
  if (incomplete.length) t.diagnostic(`${where}: for review (axe could not decide)\n${text(incomplete)}`);
  assert.equal(violations.length, 0, `${where}: ${violations.length} axe violation(s)\n${text(violations)}`);
}

// In-page helpers for what axe does not check (WCAG 1.4.11 non-text
// contrast, 2.4.7 focus visible): colours as computed, the background behind
// an element (its ancestors' backgrounds composed), contrast ratios.
const CONTRAST_HELPERS = `
  window.__contrast = (() => {
    const parse = (c) => {
      const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const over = (top, under) => ({
      r: top.r * top.a + under.r * (1 - top.a),
      g: top.g * top.a + under.g * (1 - top.a),
      b: top.b * top.a + under.b * (1 - top.a),
      a: 1,
    });
    // behind: the colour an element's box sits on (from its parent up).
    const behind = (el, self = false) => {
      const layers = [];
      for (let e = self ? el : el.parentElement; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) {
          layers.push(c);
          if (c.a >= 1) break;
        }
      }
      let c = { r: 255, g: 255, b: 255, a: 1 };
      for (const l of layers.reverse()) c = over(l, c);
      return c;
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const ratio = (x, y) => {
      const [a, b] = [lum(x), lum(y)].sort((p, q) => q - p);
      return (a + 0.05) / (b + 0.05);
    };
    const hex = ({ r, g, b }) => '#' + [r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
    const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    return { parse, over, behind, ratio, hex, name };
  })();
`;

async function helpers(page) {
  if (!(await page.evaluate(() => typeof window.__contrast === 'object'))) await page.evaluate(CONTRAST_HELPERS);
}

// checkBoundaries: every visible text field and select shows where it is
// with 3:1 against what is around it (WCAG 1.4.11), by its border or by its
// own background.
async function checkBoundaries(page, where) {
  await helpers(page);
  const bad = await page.evaluate(() => {
    const C = window.__contrast;
    const out = [];
    const root = document.querySelector('dialog[open]') || document;
    for (const el of root.querySelectorAll('input:not([type="radio"]):not([type="checkbox"]):not([type="hidden"]), select, textarea')) {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
      const cs = getComputedStyle(el);
      const around = C.behind(el);
      const fill = C.over(C.parse(cs.backgroundColor) || { r: 0, g: 0, b: 0, a: 0 }, around);
      const border = parseFloat(cs.borderTopWidth) > 0 && cs.borderTopStyle !== 'none' ? C.over(C.parse(cs.borderTopColor), around) : around;
      const best = Math.max(C.ratio(border, around), C.ratio(fill, around));
      if (best < 3) out.push(`${C.name(el)}: border ${C.hex(border)} / field ${C.hex(fill)} on ${C.hex(around)}: ${best.toFixed(2)}:1`);
    }
    return out;
  });
  assert.deepEqual(bad, [], `${where}: form fields without a 3:1 boundary (WCAG 1.4.11)\n${bad.join('\n')}`);
}

// focusRing describes the focused element's focus indicator: an outline of
// at least 2 px with 3:1 against what it is drawn on (WCAG 2.4.7, 1.4.11).
async function focusRing(page) {
  await helpers(page);
  return page.evaluate(() => {
    const C = window.__contrast;
    const el = document.activeElement;
    if (!el || el === document.body) return { ok: false, why: 'nothing focused' };
    const cs = getComputedStyle(el);
    const width = parseFloat(cs.outlineWidth) || 0;
    if (cs.outlineStyle === 'none' || width < 2) return { ok: false, why: `${C.name(el)}: no outline (${cs.outlineStyle} ${cs.outlineWidth})` };
    const color = C.parse(cs.outlineColor);
    // An outline drawn outside the box sits on the parent's background; one
    // drawn inside (a negative offset) on the element's own.
    const on = C.behind(el, parseFloat(cs.outlineOffset) < 0);
    const r = C.ratio(C.over(color, on), on);
    return { ok: r >= 3, why: `${C.name(el)}: outline ${C.hex(color)} on ${C.hex(on)}: ${r.toFixed(2)}:1` };
  });
}

async function signIn(page, token, hash) {
  await page.goto(`${base}/#token=${token}`);
  await page.waitForFunction(() => !location.hash.includes('token='));
  if (hash) await page.evaluate((h) => (location.hash = h), hash);
}

async function openQueue(page) {
  await signIn(page, tokens.oncall, '#/alerts');
  await page.locator('#queue-list li[data-patient="P1002"]').waitFor({ timeout: WAIT });
  await page.locator(`#queue-list li[data-alert-id="${ackedAlert.alert_id}"] [data-field="sae-clock"]`).waitFor({ timeout: WAIT });
}

describe('accessibility (axe, WCAG 2.1 AA)', () => {
  for (const [locale, tz] of [['en-GB', 'Europe/London'], ['zh-CN', 'Asia/Shanghai']]) {
    test(`sign-in page, ${locale}`, { timeout: 60_000 }, async (t) => {
      const { page, problems } = await newPage(t, { viewport: DESKTOP, locale, timezoneId: tz });
      await page.goto(`${base}/`);
      await page.locator('#token').waitFor();
      await checkA11y(t, page, `sign-in ${locale}`);
      // With an error shown.
      await page.fill('#token', 'not a token');
      await page.click('button[type="submit"]');
      await page.locator('.error[role="alert"]').waitFor();
      await checkA11y(t, page, `sign-in ${locale} with an error`);
      await checkBoundaries(page, `sign-in ${locale}`);
      assert.deepEqual(problems, []);
    });
  }

  test('sign-in page after an expired token', { timeout: 60_000 }, async (t) => {
    const expired = await server.mint('--role', 'pi', '--trial', TRIAL, '--site', `${TRIAL}/${SITE}`, '--sub', 'u2', '--ttl', '1s');
    await sleep(1500);
    const { page, problems } = await newPage(t, { viewport: PHONE });
    await page.goto(`${base}/#token=${expired}`);
    await page.locator('.notice[role="alert"]').waitFor({ timeout: WAIT });
    await checkA11y(t, page, 'sign-in, expired');
    assert.deepEqual(problems, []);
  });

  for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    test(`site board as a PI, ${name}`, { timeout: 60_000 }, async (t) => {
      const { page, problems } = await newPage(t, { viewport });
      await signIn(page, tokens.pi, `#/site/${TRIAL}/${SITE}`);
      await page.locator('#patients tr[data-patient="P1002"] [data-field="news2"][data-value="17"]').waitFor({ timeout: WAIT });
      await page.locator('#patients tr[data-patient="P1004"] [data-field="news2"][data-value="5"]').waitFor({ timeout: WAIT });
      await page.locator('#alerts li[data-patient="P1002"]').waitFor({ timeout: WAIT });
      await page.locator('#patients tr[data-patient="P1007"] [data-field="overdue"]').waitFor({ timeout: WAIT });
      await page.locator('#patients tr[data-patient="P1008"] [data-field="partial"]').waitFor({ timeout: WAIT });
      await page.locator('svg.spark').first().waitFor({ timeout: WAIT }).catch(() => {});
      await checkA11y(t, page, `site board ${name}`);
      await checkBoundaries(page, `site board ${name}`);
      assert.deepEqual(problems, []);
    });
  }

  test('site board while the connection is lost (dimmed, stale banner)', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await openPage(browser, t, [/WebSocket/], { viewport: DESKTOP });
    await signIn(page, tokens.pi, `#/site/${TRIAL}/${SITE}`);
    await page.locator('#patients tr[data-patient="P1002"] [data-field="news2"][data-value="17"]').waitFor({ timeout: WAIT });
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await settle(page);
    await page.evaluate(() => window.__vigil.dropConnection({ hold: true }));
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: WAIT });
    await page.locator('#stale-banner').waitFor();
    await page.locator('main.board.not-live').waitFor();
    await checkA11y(t, page, 'site board, reconnecting', { live: false });
    await page.evaluate(() => window.__vigil.reconnect());
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    assert.deepEqual(problems, []);
  });

  for (const [name, viewport, locale, tz] of [
    ['desktop', DESKTOP, 'en-GB', 'Europe/London'],
    ['phone', PHONE, 'en-GB', 'Europe/London'],
    ['phone, zh-CN', PHONE, 'zh-CN', 'Asia/Shanghai'],
  ]) {
    test(`alert queue as on-call, ${name}`, { timeout: 60_000 }, async (t) => {
      const { page, problems } = await newPage(t, { viewport, locale, timezoneId: tz });
      await openQueue(page);
      await checkA11y(t, page, `alert queue ${name}`);
      await checkBoundaries(page, `alert queue ${name}`);
      assert.deepEqual(problems, []);
    });
  }

  test('the action dialog (modal)', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, { viewport: DESKTOP });
    await openQueue(page);
    await page.locator('#queue-list li[data-patient="P1002"] button[data-action="ack"]').click();
    const dialog = page.locator('dialog#act-ack');
    await dialog.waitFor();
    await checkA11y(t, page, 'action dialog');
    // With the missing reason flagged.
    await dialog.locator('button[data-submit="ack"]').click();
    await dialog.locator('.error[data-field="reason"]').waitFor();
    await checkA11y(t, page, 'action dialog with an error');
    await checkBoundaries(page, 'action dialog');
    // The resolve dialog has its outcomes (a PI may resolve).
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.deepEqual(problems, []);
  });

  test('the resolve dialog as a PI', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, { viewport: DESKTOP });
    await signIn(page, tokens.pi, '#/alerts');
    await page.locator('#queue-list li[data-patient="P1002"] button[data-action="resolve"]').click();
    await page.locator('dialog#act-resolve').waitFor();
    await checkA11y(t, page, 'resolve dialog');
    await checkBoundaries(page, 'resolve dialog');
    assert.deepEqual(problems, []);
  });

  for (const [name, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    test(`patient view, ${name}`, { timeout: 60_000 }, async (t) => {
      const { page, problems } = await newPage(t, { viewport });
      await signIn(page, tokens.pi, `#/patient/${TRIAL}/${SITE}/P1005`);
      await page.locator(`#patient-alerts li[data-alert-id="${ackedAlert.alert_id}"]`).waitFor({ timeout: WAIT });
      await page.locator('.pv-readings tbody tr').first().waitFor({ timeout: WAIT });
      await checkA11y(t, page, `patient view ${name}`);
      await checkBoundaries(page, `patient view ${name}`);
      assert.deepEqual(problems, []);
    });
  }

  test('trial overview as safety', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, { viewport: DESKTOP });
    await signIn(page, tokens.safety);
    await page.waitForFunction(() => location.hash === '#/trial/T008');
    await page.locator('#overview table.sites-table tbody tr').first().waitFor({ timeout: WAIT });
    await page.locator('#stale-sites').waitFor({ timeout: WAIT });
    await checkA11y(t, page, 'trial overview');
    await checkBoundaries(page, 'trial overview');
    assert.deepEqual(problems, []);
  });
});

// focusTrail presses Tab n times and records what gets focus.
async function focusTrail(page, n) {
  const trail = [];
  for (let i = 0; i < n; i++) {
    await page.keyboard.press('Tab');
    trail.push(
      await page.evaluate(() => {
        const el = document.activeElement;
        return {
          tag: el.tagName.toLowerCase(),
          cls: el.className && typeof el.className === 'string' ? el.className : '',
          inNav: !!el.closest('nav'),
          sort: el.dataset?.sort || null,
          patientLink: el.matches('#patients th[data-field="patient"] a') ? el.textContent.trim() : null,
          text: (el.textContent || '').trim().slice(0, 30),
        };
      }),
    );
    trail[i].ring = await focusRing(page);
  }
  return trail;
}

describe('keyboard', () => {
  test('site board: skip link, navigation, sort buttons, a patient; Enter opens the patient', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, { viewport: DESKTOP });
    await signIn(page, tokens.pi, `#/site/${TRIAL}/${SITE}`);
    await page.locator('#patients tr[data-patient="P1002"] [data-field="news2"][data-value="17"]').waitFor({ timeout: WAIT });
    await settle(page);
    // Start from the top of the document, as after a load.
    await page.evaluate(() => {
      document.activeElement?.blur();
      window.scrollTo(0, 0);
    });
    const trail = await focusTrail(page, 40);
    const describe = trail.map((f, i) => `${i}: ${f.tag}.${f.cls} ${f.sort || f.patientLink || f.text}`).join('\n');
    assert.equal(trail[0].cls, 'skip', `the skip link comes first:\n${describe}`);
    const nav = trail.findIndex((f) => f.inNav);
    const sort = trail.findIndex((f) => f.sort);
    const patient = trail.findIndex((f) => f.patientLink);
    assert.ok(nav > 0, `Tab reaches the navigation:\n${describe}`);
    assert.ok(sort > nav, `then the sort buttons:\n${describe}`);
    assert.ok(patient > sort, `then a patient link:\n${describe}`);
    assert.ok(trail.filter((f) => f.sort).length >= 4, `every sortable column:\n${describe}`);
    const unseen = trail.filter((f) => !f.ring.ok).map((f) => f.ring.why);
    assert.deepEqual(unseen, [], 'every focused control shows a visible focus ring');

    // The skip link moves focus to the main content (after a reload, so
    // Tab starts again from the top).
    await page.reload();
    await page.locator('#patients tr[data-patient="P1002"]').waitFor({ timeout: WAIT });
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip');
    assert.ok(await page.locator('.skip').isVisible(), 'the skip link shows when focused');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    // The next Tab goes on from the main content: the sort buttons.
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => !!document.activeElement?.closest('#main')), 'Tab continues in the main content');

    // Enter on a patient link opens the patient view.
    const link = page.locator('#patients tr[data-patient="P1002"] th[data-field="patient"] a');
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => location.hash === '#/patient/T008/S01/P1002');
    await page.locator('#patient-alerts').waitFor({ timeout: WAIT });
    assert.deepEqual(problems, []);
  });

  test('queue: Tab to Acknowledge, Enter opens the dialog, Escape closes it and focus returns', { timeout: 60_000 }, async (t) => {
    const { page, problems } = await newPage(t, { viewport: DESKTOP });
    await openQueue(page);
    await settle(page);
    await page.evaluate(() => document.activeElement?.blur());
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => document.activeElement?.matches('#queue-list button[data-action="ack"]') ?? false);
    }
    assert.ok(found, 'Tab reaches an Acknowledge button');
    const ring = await focusRing(page);
    assert.ok(ring.ok, ring.why);
    const button = await page.evaluateHandle(() => document.activeElement);
    const patient = await page.evaluate(() => document.activeElement.closest('li[data-patient]').dataset.patient);

    await page.keyboard.press('Enter');
    const dialog = page.locator('dialog#act-ack');
    await dialog.waitFor();
    assert.equal(await dialog.evaluate((d) => d.open && d.matches(':modal')), true, 'a modal dialog');
    assert.equal(await dialog.evaluate((d) => d.contains(document.activeElement)), true, 'focus is inside the dialog');
    assert.match(await dialog.locator('h2').innerText(), new RegExp(patient));
    // Tab stays inside the modal, every control with its focus ring.
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab');
      const inside = await dialog.evaluate((d) => d.contains(document.activeElement) || document.activeElement === document.body);
      assert.ok(inside, 'focus stays in the dialog');
      if (await dialog.evaluate((d) => d.contains(document.activeElement))) {
        const r = await focusRing(page);
        assert.ok(r.ok, r.why);
      }
    }

    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    // The dialog leaves the page first; focus comes back just after.
    await page.waitForFunction((b) => b === document.activeElement, button, { timeout: 2000 }).catch(() => {});
    assert.equal(await button.evaluate((b) => b === document.activeElement), true, 'focus returns to the button');
    assert.deepEqual(problems, []);
  });
});
