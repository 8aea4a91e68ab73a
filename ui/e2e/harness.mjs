// Shared harness of the end-to-end tests (not a test file itself: `node --test
// e2e/` runs only *.test.mjs and the like). It starts `vigil serve` processes
// (one object per server, so a test file may run several), mints tokens with
// `vigil token`, posts readings, and drives Chromium through playwright-core.
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
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const run = promisify(execFile);
export const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = path.resolve(uiDir, '..');
export const BIN = process.env.VIGIL_BIN ? path.resolve(process.env.VIGIL_BIN) : path.resolve(uiDir, '../bin/vigil');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const OUT = path.join(uiDir, 'e2e', 'out');
export const TRIAL = 'T008';
export const SITE = 'S01';

export const WAIT = 15_000;

export const NORMAL = {
  respiratory_rate: 16, spo2: 97, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 122, diastolic_bp: 78, heart_rate: 72, consciousness: 'alert', temperature: 36.8,
};
// NEWS2 3+3+0+3+3+3+2 = 17: high band.
export const DETERIORATING = {
  respiratory_rate: 26, spo2: 90, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 88, diastolic_bp: 54, heart_rate: 135, consciousness: 'voice', temperature: 39.5,
};
// NEWS2 2 (RR 21) + 1 (HR 95) = 3: low band, no alert.
export const SLIGHTLY_OFF = {
  respiratory_rate: 21, spo2: 96, spo2_scale: 1, on_oxygen: false,
  systolic_bp: 118, diastolic_bp: 74, heart_rate: 95, consciousness: 'alert', temperature: 37.4,
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
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

// Every child this harness starts, killed with SIGKILL if the test process
// exits without stopping it (a failed before(), an uncaught error).
const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

// startProcess spawns a child whose stdout and stderr are kept in memory:
// `log()` returns them so far, for failure messages.
export function startProcess(cmd, args, opts = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  proc.stdout.on('data', (b) => (log += b));
  proc.stderr.on('data', (b) => (log += b));
  children.add(proc);
  const exited = new Promise((r) => {
    proc.once('exit', (code, signal) => r({ code, signal }));
    // A child that could not start (ENOENT) emits 'error' and no 'exit'.
    proc.once('error', (e) => {
      log += `\nspawn ${cmd}: ${e.message}\n`;
      if (proc.pid === undefined) r({ code: null, signal: null, error: e });
    });
  });
  exited.then(() => children.delete(proc));
  return {
    name: [path.basename(cmd), ...args.slice(0, 2)].join(' '),
    proc,
    exited,
    log: () => log,
    running: () => proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined,
    // kill sends signal and waits for the exit, with SIGKILL after graceMs.
    async kill(signal = 'SIGTERM', graceMs = 5000) {
      if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function exitedError(what, child) {
  const { exitCode, signalCode } = child.proc;
  return new Error(`\`${child.name}\` exited (${exitCode ?? signalCode}) before ${what}:\n${child.log()}`);
}

// waitHealthy polls url until it answers 200, failing early if child exits.
export async function waitHealthy(url, ms, child) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child && !child.running()) throw exitedError(`${url} answered`, child);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${ms} ms:\n${child ? child.log() : ''}`);
    await sleep(100);
  }
}

function connects(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// waitPort waits until host:port accepts TCP connections, failing early if
// child exits.
export async function waitPort(host, port, ms, child) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child && !child.running()) throw exitedError(`${host}:${port} accepted connections`, child);
    if (await connects(host, port)) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} not accepting connections after ${ms} ms:\n${child ? child.log() : ''}`);
    await sleep(100);
  }
}

// startVigil runs `vigil serve` on a free port with a temporary SQLite
// database and a random JWT secret; extraEnv adds to (or overrides) its
// environment. The returned object is that server's handle.
export async function startVigil(extraEnv = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no vigil binary at ${BIN}: run \`go build -o bin/vigil .\` at the repository root, or set VIGIL_BIN`);
  }
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-'));
  const port = await freePort();
  const env = {
    ...process.env,
    VIGIL_ADDR: `127.0.0.1:${port}`,
    VIGIL_DB: `sqlite://${path.join(tmp, 'vigil.db')}`,
    VIGIL_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    VIGIL_REDIS_URL: '',
    VIGIL_PREDICTOR_ADDR: '',
    ...extraEnv,
  };
  const server = new VigilServer(tmp, `http://127.0.0.1:${port}`, env);
  server.child = startProcess(BIN, ['serve'], { env, cwd: tmp });
  try {
    await waitHealthy(`${server.base}/healthz`, 20_000, server.child);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

export class VigilServer {
  constructor(tmp, base, env) {
    this.tmp = tmp;
    this.base = base;
    this.env = env;
    this.child = null;
    // tokens: minted tokens by name ("pi", or a patient id), see token().
    this.tokens = Object.create(null); // patient ids may be "__proto__"
  }

  log() {
    return this.child ? this.child.log() : '';
  }

  // mint runs `vigil token args…` against this server's secret.
  async mint(...args) {
    const { stdout } = await run(BIN, ['token', ...args], { env: this.env });
    const token = stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `vigil token printed ${JSON.stringify(stdout)}`);
    return token;
  }

  piToken(sub = 'u1', trial = TRIAL, site = SITE) {
    return this.mint('--role', 'pi', '--trial', trial, '--site', `${trial}/${site}`, '--sub', sub);
  }

  patientToken(patient, trial = TRIAL, site = SITE) {
    return this.mint('--role', 'patient', '--trial', trial, '--site', `${trial}/${site}`, '--sub', patient);
  }

  // token returns the cached token of "pi" (sub u1) or of a patient id,
  // minting it the first time.
  async token(name) {
    if (!this.tokens[name]) this.tokens[name] = await (name === 'pi' ? this.piToken() : this.patientToken(name));
    return this.tokens[name];
  }

  // staffToken mints a staff token: role, sites ("T008/S01"), and options
  // sub, name, authAge ("13h": signed in that long ago).
  staffToken(role, sites = [], { sub = `u-${role}`, name = `Test ${role}`, authAge, trial = TRIAL } = {}) {
    const args = ['--role', role, '--trial', trial, '--sub', sub, '--name', name];
    for (const s of sites) args.push('--site', s);
    if (authAge) args.push('--auth-age', authAge);
    return this.mint(...args);
  }

  // putProtocol applies a trial protocol as the trial's admin.
  async putProtocol(protocol) {
    const admin = await this.staffToken('admin', [], { trial: protocol.trial_id });
    const res = await fetch(`${this.base}/v1/trials/${protocol.trial_id}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}`, 'X-Vigil-Reason': 'e2e set-up' },
      body: JSON.stringify(protocol),
    });
    assert.equal(res.status, 200, `PUT protocol: ${res.status} ${await res.text()}`);
  }

  // postReading posts one reading of patient at TRIAL/SITE (or site),
  // measured now, and returns its body.
  async postReading(patient, vitals, { site = SITE, symptoms = [] } = {}) {
    const body = {
      reading_id: crypto.randomUUID(),
      patient_id: patient,
      trial_id: TRIAL,
      site_id: site,
      measured_at: new Date().toISOString(),
      vitals,
      symptoms,
    };
    const key = site === SITE ? patient : `${patient}@${site}`;
    if (!this.tokens[key]) this.tokens[key] = await this.patientToken(patient, TRIAL, site);
    const res = await fetch(`${this.base}/v1/readings`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.tokens[key]}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.equal(res.status, 202, `POST /v1/readings for ${patient}: ${res.status} ${text}`);
    return body;
  }

  // sitePatients is the REST snapshot the board should agree with.
  async sitePatients() {
    const res = await fetch(`${this.base}/v1/trials/${TRIAL}/sites/${SITE}/patients`, {
      headers: { Authorization: `Bearer ${await this.token('pi')}` },
    });
    assert.equal(res.status, 200, `GET patients: ${res.status} ${await res.clone().text()}`);
    return (await res.json()).patients;
  }

  async waitScored(readingId, ms = WAIT) {
    const deadline = Date.now() + ms;
    for (;;) {
      const p = (await this.sitePatients()).find((r) => r.reading_id === readingId);
      if (p?.score) return p;
      if (Date.now() > deadline) throw new Error(`reading ${readingId} not scored after ${ms} ms`);
      await sleep(100);
    }
  }

  // restart stops the server and starts it again on the same address and
  // database, as after a deployment or a crash.
  async restart() {
    await this.child?.kill('SIGTERM', 5000);
    this.child = startProcess(BIN, ['serve'], { env: this.env, cwd: this.tmp });
    await waitHealthy(`${this.base}/healthz`, 20_000, this.child);
  }

  // stop ends the server (SIGTERM, SIGKILL after 5 s) and removes its files.
  async stop() {
    await this.child?.kill('SIGTERM', 5000);
    await fs.rm(this.tmp, { recursive: true, force: true });
  }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

// newPage opens a page that records script errors and CSP violations; its
// context closes after test t. allowed: console errors the test expects (a
// 401 for a rejected token).
export async function newPage(browser, t, allowed = [], { viewport = { width: 1440, height: 800 }, locale = 'en-GB', timezoneId = 'Europe/London' } = {}) {
  const context = await browser.newContext({ viewport, locale, timezoneId });
  // A Notification the test can see: permission granted, each one recorded.
  await context.addInitScript(() => {
    window.__vigilTest = true; // the board installs window.__vigil
    window.__vigilNotes = [];
    window.__vigilNotesClosed = [];
    window.Notification = class {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title, opts) {
        this.tag = opts?.tag;
        window.__vigilNotes.push({ title, ...opts });
      }
      close() { window.__vigilNotesClosed.push(this.tag); }
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

// openBoard signs in from the URL fragment and waits for the site's live
// table.
export async function openBoard(page, base, token) {
  await page.goto(`${base}/#token=${token}`);
  await page.waitForFunction(() => !location.hash.includes('token='));
  // One site in the token: opened directly; else pick it.
  await page.locator('#patients, a[data-site]').first().waitFor({ timeout: WAIT });
  if (await page.locator(`a[data-site="${TRIAL}/${SITE}"]`).count()) {
    await page.click(`a[data-site="${TRIAL}/${SITE}"]`);
  }
  await page.locator('#patients').waitFor();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
}

export function row(page, patient) {
  return page.locator(`#patients tr[data-patient="${patient}"]`);
}

export function cell(page, patient, field) {
  return row(page, patient).locator(`[data-field="${field}"]`);
}

// screenshot saves the page to e2e/out/name, after any row flash has ended
// (fullPage: false keeps the viewport only, as a phone shows it).
export async function screenshot(page, name, { fullPage = true } = {}) {
  await fs.mkdir(OUT, { recursive: true });
  await page.locator('#patients tr.flash-a, #patients tr.flash-b').first().waitFor({ state: 'detached', timeout: WAIT }).catch(() => {});
  await page.screenshot({ path: path.join(OUT, name), fullPage });
}
