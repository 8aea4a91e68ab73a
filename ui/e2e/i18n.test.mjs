// The catalogues: every key in both languages, the same placeholders in
// each, and every key the board's code asks for present. No browser needed.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { uiDir } from './harness.mjs';

const js = path.join(uiDir, 'static', 'js');
const load = async (l) => (await import(pathToFileURL(path.join(js, 'locales', l, 'index.js')).href)).default;
const placeholders = (s) => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('en and zh-CN have the same keys and placeholders', async () => {
  const en = await load('en');
  const zh = await load('zh-CN');
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
  for (const [k, v] of Object.entries(en)) {
    assert.deepEqual(placeholders(zh[k]), placeholders(v), `placeholders of ${k}`);
    // Identical text is fine for names, units and codes (Vigil, mmHg,
    // NEWS2), not for words.
    if (/[a-z]{4,}/.test(v.replace(/\{\w+\}|Vigil|mmHg|log-odds/g, ''))) assert.notEqual(zh[k], v, `${k} is not translated`);
  }
});

test('every key the code asks for with a literal exists', async () => {
  const en = await load('en');
  const files = (await fs.readdir(js)).filter((f) => f.endsWith('.js'));
  const missing = [];
  for (const f of files) {
    const src = await fs.readFile(path.join(js, f), 'utf8');
    for (const m of src.matchAll(/\bt[n]?\(\s*'([\w.-]+)'/g)) {
      const k = m[1];
      if (!(k in en) && !(`${k}.one` in en && `${k}.other` in en)) missing.push(`${f}: ${k}`);
    }
  }
  assert.deepEqual(missing, []);
});
