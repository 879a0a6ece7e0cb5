// The esbuild build: reproducible, and the bundle works on its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from '../build.mjs';
import { answer } from './fakes.js';

/** @param {string} dir */
async function digest(dir) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const f of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue;
    const p = path.join(f.parentPath ?? f.path, f.name);
    out[path.relative(dir, p)] = crypto
      .createHash('sha256')
      .update(await readFile(p))
      .digest('hex');
  }
  return out;
}

test('two builds give the same bytes, and the demo page is complete', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'credbroker-web-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const a = await digest(await build(path.join(tmp, 'a')));
  const b = await digest(await build(path.join(tmp, 'b')));
  assert.deepEqual(Object.keys(a).sort(), ['credbroker.js', 'demo/app.js', 'demo/index.html', 'demo/style.css']);
  assert.deepEqual(a, b);
  const html = await readFile(path.join(tmp, 'a', 'demo', 'index.html'), 'utf8');
  assert.match(html, /<script type="module" src="app.js"><\/script>/);
  const app = await readFile(path.join(tmp, 'a', 'demo', 'app.js'), 'utf8');
  assert.doesNotMatch(app, /from\s*["'](node:|@aws-sdk|\.\.\/src)/, 'everything is bundled in');
});

test('the bundled module exports the API and routes like the sources', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'credbroker-web-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const out = await build(tmp);
  const m = await import(pathToFileURL(path.join(out, 'credbroker.js')).href);
  for (const name of [
    'CredentialBroker',
    'CognitoAuth',
    'CognitoSession',
    'route',
    'parseAnswer',
    'NoAccessError',
    'ReadOnlyError',
    'AuthError',
    'UnavailableError',
    'EndpointError',
    'RoutingError',
    'SignInError',
    'CredbrokerError',
    'explainS3Error',
  ]) {
    assert.equal(typeof m[name], 'function', name);
  }
  const a = m.parseAnswer(
    answer({
      sets: [
        { name: 'X', expiresAt: Date.now() + 900_000, grants: [{ bucket: 'b', prefix: 'in/', access: 'write' }] },
        { name: 'Y', expiresAt: Date.now() + 900_000, grants: [{ bucket: 'b', prefix: 'out/' }] },
      ],
    }),
  );
  assert.equal(m.route(a, 'b', { key: 'out/x' }).set.accessKeyId, 'AKIAY');
  assert.throws(() => m.route(a, 'b', { key: 'out/x', access: 'write' }), m.ReadOnlyError);
});
