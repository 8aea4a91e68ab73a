// Board benchmark: the site board in Chromium with 500 patients on screen
// while `vigil simulate` posts 20 readings a second to their site. It prints
// first paint, time to the full table, what the page downloaded, and during
// the load the frame intervals, long tasks and script time, from the
// browser's own performance timeline. Not a test: `make bench-ui` runs it,
// and docs/BENCHMARKS.md records its results.
//
//   node bench/board.mjs [--patients 500] [--rate 20] [--seconds 30]

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { BIN, launchBrowser, sleep, startVigil } from '../e2e/harness.mjs';

const { values: o } = parseArgs({
  options: {
    patients: { type: 'string', default: '500' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
  },
});
const patients = Number(o.patients);
const seconds = Number(o.seconds);

const server = await startVigil({ VIGIL_RATE_PER_PATIENT: '0', VIGIL_RATE_PER_IP: '0' });
const simulate = (rate, duration) =>
  new Promise((resolve, reject) => {
    const p = spawn(BIN, ['simulate', '--url', server.base, '--patients', String(patients), '--sites', '1', '--rate', String(rate),
      '--duration', duration, '--watch=false', '--deteriorating', '0.05'], { env: server.env, stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`simulate exited ${code}`))));
  });

let browser;
try {
  // Every patient reports once before the board opens.
  await simulate(Math.max(100, patients / 5), `${Math.ceil(patients / Math.max(100, patients / 5)) + 2}s`);
  const pi = await server.staffToken('pi', ['T008/S01'], { sub: 'u-bench' });
  browser = await launchBrowser();
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.addInitScript(() => (window.__vigilTest = true));
  const t0 = Date.now();
  await page.goto(`${server.base}/#token=${pi}`);
  // The table renders the rows in view; the store holds them all.
  await page.waitForFunction((n) => Object.keys(window.__vigil?.store.site('T008/S01')?.patients || {}).length >= n && document.querySelector('#patients tr[data-patient]'), patients * 0.98, { timeout: 60_000 });
  const tableMs = Date.now() - t0;
  const load = await page.evaluate(() => {
    const paint = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
    const res = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'));
    const assets = res.filter((r) => !/\/v1\/|\/ws/.test(r.name));
    return {
      fcp: paint ? Math.round(paint.startTime) : null,
      assetBytes: assets.reduce((n, r) => n + (r.encodedBodySize || 0), 0),
      assetFiles: assets.length,
    };
  });

  // Frames and long tasks while readings arrive.
  await page.evaluate(() => {
    window.__bench = { frames: [], long: [], last: performance.now(), on: true };
    const tick = (now) => {
      const b = window.__bench;
      b.frames.push(now - b.last);
      b.last = now;
      if (b.on) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    new PerformanceObserver((l) => window.__bench.long.push(...l.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const before = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  if (process.env.BOARD_PROFILE) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  if (process.env.BOARD_TRACE) await browser.startTracing(page, { path: process.env.BOARD_TRACE, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  await simulate(Number(o.rate), `${seconds}s`);
  if (process.env.BOARD_TRACE) await browser.stopTracing();
  if (process.env.BOARD_PROFILE) {
    const { profile } = await cdp.send('Profiler.stop');
    (await import('node:fs')).writeFileSync(process.env.BOARD_PROFILE, JSON.stringify(profile));
  }
  const after = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const run = await page.evaluate(() => {
    window.__bench.on = false;
    const f = window.__bench.frames.slice(1).sort((a, b) => a - b);
    const q = (p) => Math.round(f[Math.min(f.length - 1, Math.floor(p * f.length))] * 10) / 10;
    return { frames: f.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: Math.round(f[f.length - 1]), long: window.__bench.long.length, longMs: Math.round(window.__bench.long.reduce((a, b) => a + b, 0)) };
  });
  const rows = await page.evaluate(() => Object.keys(window.__vigil.store.site('T008/S01').patients).length);
  const inDom = await page.locator('#patients tr[data-patient]').count();
  const script = (after.ScriptDuration - before.ScriptDuration) / seconds;
  const layout = (after.LayoutDuration + after.RecalcStyleDuration - before.LayoutDuration - before.RecalcStyleDuration) / seconds;
  console.log(`| patients on the board (rows in the DOM) | ${rows} (${inDom}) |
| first contentful paint | ${load.fcp} ms |
| sign-in link → full table | ${tableMs} ms |
| board assets (${load.assetFiles} files, compressed as served) | ${(load.assetBytes / 1024).toFixed(0)} KiB |
| readings/s during the run | ${o.rate} for ${seconds} s |
| frame interval p50 / p95 / p99 / max | ${run.p50} / ${run.p95} / ${run.p99} / ${run.max} ms (${run.frames} frames) |
| long tasks (> 50 ms) | ${run.long} (${run.longMs} ms in all) |
| main-thread script / style+layout per second | ${(script * 1000).toFixed(0)} / ${(layout * 1000).toFixed(0)} ms |`);
} finally {
  await browser?.close().catch(() => {});
  await server.stop();
}
await sleep(0);
