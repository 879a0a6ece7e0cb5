// explainS3Error on what the real AWS SDK for JavaScript v3 throws: a missing
// bucket, a refusal, an endpoint nobody listens on, and a browser's bare
// "Failed to fetch". Each message names the next step.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { explainS3Error } from '../src/s3errors.js';
import { startServer } from './fakes.js';

/** @param {string} code @param {number} status */
const s3Error = (code, status) => ({
  status,
  headers: { 'Content-Type': 'application/xml' },
  text: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message><BucketName>b</BucketName></Error>`,
});

/** What ListObjectsV2 of demo-exports/2026/ throws against endpoint. @param {string} endpoint */
async function listError(endpoint) {
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId: 'AKIA', secretAccessKey: 's' },
  });
  try {
    await s3.send(new ListObjectsV2Command({ Bucket: 'demo-exports', Prefix: '2026/' }));
  } catch (err) {
    return err;
  }
  assert.fail('the listing succeeded');
}

/** @param {string} message @param {string[]} wants */
function says(message, wants) {
  for (const want of wants) {
    assert.ok(message.includes(want), `${JSON.stringify(message)} lacks ${JSON.stringify(want)}`);
  }
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(undefined)));
  const port = /** @type {import('node:net').AddressInfo} */ (srv.address()).port;
  await new Promise((resolve) => srv.close(() => resolve(undefined)));
  return port;
}

test('a missing bucket names the bucket, the project that grants it and the commands that fix it', async (t) => {
  const s3 = await startServer(() => s3Error('NoSuchBucket', 404));
  t.after(s3.close);
  const p = explainS3Error(await listError(s3.url), {
    bucket: 'demo-exports',
    key: '2026/',
    endpoint: s3.url,
    projects: ['demo'],
  });
  assert.equal(p.code, 'no_such_bucket');
  says(p.message, [
    'Bucket "demo-exports" does not exist',
    'project demo grants it',
    `aws --endpoint-url ${s3.url} s3 mb s3://demo-exports`,
    'credbroker admin bucket delete --stack .local/stack.json --project demo --bucket demo-exports',
    'SEED=1 make run',
  ]);
});

test('on AWS a missing bucket says nothing of the local stack', async (t) => {
  const s3 = await startServer(() => s3Error('NoSuchBucket', 404));
  t.after(s3.close);
  const p = explainS3Error(await listError(s3.url), { bucket: 'demo-exports', projects: ['a', 'b'] });
  assert.equal(p.code, 'no_such_bucket');
  assert.match(p.message, /projects a, b grant it/);
  assert.match(p.message, /`aws s3 mb s3:\/\/demo-exports`/);
  assert.doesNotMatch(p.message, /make run/);
});

test('a refusal says to fetch the access again', async (t) => {
  const s3 = await startServer(() => s3Error('AccessDenied', 403));
  t.after(s3.close);
  const p = explainS3Error(await listError(s3.url), { bucket: 'demo-exports', key: '2026/', action: 'upload' });
  assert.equal(p.code, 'access_denied');
  assert.match(p.message, /^S3 refused to store s3:\/\/demo-exports\/2026\/: .*Fetch your access again/);
});

test('an endpoint nobody listens on is unreachable, and on loopback the message says to start the stack', async () => {
  const endpoint = `http://127.0.0.1:${await closedPort()}`;
  const p = explainS3Error(await listError(endpoint), { bucket: 'demo-exports', key: '2026/', endpoint });
  assert.equal(p.code, 'unreachable');
  assert.match(p.message, /could not be reached to list s3:\/\/demo-exports\/2026\/ \(ECONNREFUSED\)/);
  assert.match(p.message, /SEED=1 make run/);
});

test("a browser's bare failure names its three causes and how to check each", () => {
  // What fetch throws in Chromium when the preflight is refused or the
  // server is down; the SDK passes it on with its retry counts.
  const err = Object.assign(new TypeError('Failed to fetch'), { $metadata: { attempts: 3 } });
  const p = explainS3Error(err, {
    bucket: 'demo-exports',
    key: '2026/',
    endpoint: 'http://127.0.0.1:4566',
    origin: 'http://127.0.0.1:8081',
  });
  assert.equal(p.code, 'unreachable');
  says(p.message, [
    'Failed to fetch',
    'does not exist',
    "no CORS rule for this page's origin (http://127.0.0.1:8081)",
    '`aws --endpoint-url http://127.0.0.1:4566 s3 ls s3://demo-exports`',
    'SEED=1 make run',
  ]);
});

test('any other S3 error keeps its code and status', async (t) => {
  const s3 = await startServer(() => s3Error('SlowDown', 503));
  t.after(s3.close);
  const p = explainS3Error(await listError(s3.url), { bucket: 'b', action: 'read' });
  assert.equal(p.code, 'error');
  assert.match(p.message, /^S3 could not read s3:\/\/b\/: SlowDown \(HTTP 503\)/);
});
