// The providers and the AccessDenied plugin inside the real AWS SDK for
// JavaScript v3 (@aws-sdk/client-s3), against a fake S3 that allows or
// refuses each request by the access key that signed it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CredentialBroker, isAccessDenied } from '../src/broker.js';
import { NoAccessError, ReadOnlyError } from '../src/errors.js';
import { MINUTE, answer, fakeTokens, startServer } from './fakes.js';

const xml = (/** @type {string} */ body) => `<?xml version="1.0" encoding="UTF-8"?>${body}`;
const denied = {
  status: 403,
  headers: { 'Content-Type': 'application/xml' },
  text: xml('<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>r1</RequestId></Error>'),
};

/**
 * A fake S3 with path-style URLs. `allow(keyId, method, bucket)` decides.
 * @param {(keyId: string, method: string, bucket: string) => boolean} allow
 */
async function fakeS3(allow) {
  return startServer((req) => {
    const keyId = /Credential=([^/]+)\//.exec(String(req.headers.authorization))?.[1] ?? '';
    const url = new URL(req.url, 'http://x');
    const [, bucket, ...rest] = url.pathname.split('/');
    if (!allow(keyId, req.method, bucket)) return denied;
    if (req.method === 'PUT') return { headers: { ETag: '"e1"' }, text: '' };
    const prefix = url.searchParams.get('prefix') ?? '';
    return {
      headers: { 'Content-Type': 'application/xml' },
      text: xml(
        `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${prefix}</Prefix>` +
          `<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` +
          `<Contents><Key>${prefix}signed-by-${keyId}${rest.join('/')}</Key><Size>3</Size></Contents></ListBucketResult>`,
      ),
    };
  });
}

/**
 * An S3 client as the demo makes one: path style, one per place.
 * @param {string} endpoint
 * @param {CredentialBroker} broker
 * @param {string} bucket
 * @param {import('../src/broker.js').ProviderOptions} [opts]
 */
function client(endpoint, broker, bucket, opts) {
  const c = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    credentials: broker.credentialsFor(bucket, opts),
  });
  c.middlewareStack.use(broker.s3Plugin());
  return c;
}

/**
 * @param {S3Client} c
 * @param {string} bucket
 * @param {string} [prefix]
 */
const list = async (c, bucket, prefix) =>
  (await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents?.[0]?.Key;

/**
 * @param {import('node:test').TestContext} t
 * @param {(req: import('./fakes.js').Recorded, n: number) => any} endpointHandler
 * @param {(keyId: string, method: string, bucket: string) => boolean} allow
 */
async function setup(t, endpointHandler, allow) {
  const endpoint = await startServer(endpointHandler);
  const s3 = await fakeS3(allow);
  t.after(async () => {
    await endpoint.close();
    await s3.close();
  });
  const broker = new CredentialBroker({ apiUrl: endpoint.url, tokens: fakeTokens() });
  return { endpoint, s3, broker };
}

const sets = (/** @type {string} */ suffix, version = 'v1') =>
  answer({
    version,
    sets: [
      { name: `A${suffix}`, expiresAt: Date.now() + 15 * MINUTE, grants: [{ bucket: 'alpha', access: 'write' }] },
      { name: `B${suffix}`, expiresAt: Date.now() + 15 * MINUTE, grants: [{ bucket: 'gamma', prefix: 'raw/' }] },
      {
        name: `C${suffix}`,
        expiresAt: Date.now() + 15 * MINUTE,
        grants: [{ bucket: 'gamma', prefix: 'curated/', access: 'write' }],
      },
    ],
  });

test('each client signs with the credential set of its place', async (t) => {
  const { broker, s3, endpoint } = await setup(
    t,
    () => ({ json: sets('1') }),
    () => true,
  );
  assert.equal(await list(client(s3.url, broker, 'alpha'), 'alpha'), 'signed-by-AKIAA1');
  assert.equal(await list(client(s3.url, broker, 'gamma', { key: 'raw/' }), 'gamma', 'raw/'), 'raw/signed-by-AKIAB1');
  assert.equal(
    await list(client(s3.url, broker, 'gamma', { key: 'curated/' }), 'gamma', 'curated/'),
    'curated/signed-by-AKIAC1',
  );
  assert.equal(endpoint.requests.length, 1);
  assert.equal(s3.requests.length, 3);
  assert.match(String(s3.requests[0].headers['x-amz-security-token']), /^token-A1$/);
});

test('the SDK asks the provider on every request, so new credentials are used at once', async (t) => {
  let n = 1;
  const { broker, s3 } = await setup(
    t,
    () => ({ json: sets(String(n)) }),
    () => true,
  );
  const alpha = client(s3.url, broker, 'alpha');
  assert.equal(await list(alpha, 'alpha'), 'signed-by-AKIAA1');
  n = 2;
  broker.invalidate();
  assert.equal(await list(alpha, 'alpha'), 'signed-by-AKIAA2', 'not the SDK-cached AKIAA1');
});

test('AccessDenied: fresh credentials are fetched with no-cache and the command sent once more', async (t) => {
  let n = 1;
  const { broker, s3, endpoint } = await setup(
    t,
    () => ({ json: sets(String(n++)) }),
    (keyId) => keyId !== 'AKIAA1', // the first session was revoked
  );
  const alpha = client(s3.url, broker, 'alpha');
  const put = await alpha.send(new PutObjectCommand({ Bucket: 'alpha', Key: 'up.txt', Body: 'hello' }));
  assert.equal(put.ETag, '"e1"');
  assert.deepEqual(
    s3.requests.map((r) => /Credential=([^/]+)/.exec(String(r.headers.authorization))?.[1]),
    ['AKIAA1', 'AKIAA2'],
  );
  assert.deepEqual(
    s3.requests.map((r) => r.body),
    ['hello', 'hello'],
    'the body was sent again whole',
  );
  assert.deepEqual(
    endpoint.requests.map((r) => r.headers['cache-control']),
    [undefined, 'no-cache'],
  );
});

test('AccessDenied again after the refetch is thrown, with no further refetch', async (t) => {
  const { broker, s3, endpoint } = await setup(
    t,
    () => ({ json: sets('1') }),
    () => false,
  );
  const alpha = client(s3.url, broker, 'alpha');
  await assert.rejects(
    list(alpha, 'alpha'),
    (/** @type {any} */ err) => err.name === 'AccessDenied' && err.$metadata.httpStatusCode === 403,
  );
  assert.equal(s3.requests.length, 2);
  assert.equal(endpoint.requests.length, 2);
});

test('many requests refused together cost one refetch', async (t) => {
  let n = 1;
  const { broker, s3, endpoint } = await setup(
    t,
    () => ({ json: sets(String(n++)) }),
    (keyId) => keyId !== 'AKIAA1',
  );
  await broker.resources(); // every request below starts with AKIAA1
  const alpha = client(s3.url, broker, 'alpha');
  const results = await Promise.all(Array.from({ length: 5 }, () => list(alpha, 'alpha')));
  assert.deepEqual(results, Array(5).fill('signed-by-AKIAA2'));
  assert.equal(s3.requests.filter((r) => String(r.headers.authorization).includes('AKIAA1')).length, 5);
  assert.equal(endpoint.requests.length, 2, 'one refetch for five refusals');
});

test('a grant removed meanwhile: the retry ends in a NoAccessError naming the bucket', async (t) => {
  let revoked = false;
  const { broker, s3 } = await setup(
    t,
    () => ({
      json: revoked
        ? answer({
            version: 'v2',
            sets: [{ name: 'Z', expiresAt: Date.now() + 15 * MINUTE, grants: [{ bucket: 'other' }] }],
          })
        : sets('1'),
    }),
    () => !revoked,
  );
  const alpha = client(s3.url, broker, 'alpha');
  await list(alpha, 'alpha');
  revoked = true;
  await assert.rejects(
    list(alpha, 'alpha'),
    (/** @type {any} */ err) => err instanceof NoAccessError && err.bucket === 'alpha',
  );
});

test('a write to a read-only place is refused before any request to S3', async (t) => {
  const { broker, s3 } = await setup(
    t,
    () => ({ json: sets('1') }),
    () => true,
  );
  const raw = client(s3.url, broker, 'gamma', { key: 'raw/new.csv', access: 'write' });
  await assert.rejects(
    raw.send(new PutObjectCommand({ Bucket: 'gamma', Key: 'raw/new.csv', Body: 'x' })),
    (/** @type {any} */ err) => {
      assert.ok(err instanceof ReadOnlyError, String(err));
      assert.match(err.message, /You can read "gamma\/raw\/" but not change it/);
      return true;
    },
  );
  assert.equal(s3.requests.length, 0);
});

test('isAccessDenied recognises S3 refusals as the SDK reports them, and only those', async (t) => {
  const replies = {
    '/b/denied': denied,
    '/b/head-denied': { status: 403, text: '' },
    '/b/bad-signature': {
      status: 403,
      headers: { 'Content-Type': 'application/xml' },
      text: xml('<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>'),
    },
    '/b/missing': { status: 404, text: '' },
  };
  const s3 = await startServer(
    (req) => replies[/** @type {keyof typeof replies} */ (new URL(req.url, 'http://x').pathname)],
  );
  t.after(() => s3.close());
  const c = new S3Client({
    region: 'us-east-1',
    endpoint: s3.url,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  /** @param {string} key */
  const errorOf = async (key) => {
    try {
      await c.send(new HeadObjectCommand({ Bucket: 'b', Key: key }));
    } catch (err) {
      return err;
    }
    throw new Error('no error');
  };
  /** @param {string} key */
  const putError = async (key) => {
    try {
      await c.send(new PutObjectCommand({ Bucket: 'b', Key: key, Body: 'x' }));
    } catch (err) {
      return err;
    }
    throw new Error('no error');
  };
  assert.equal(isAccessDenied(await putError('denied')), true, 'AccessDenied with a body');
  assert.equal(isAccessDenied(await errorOf('head-denied')), true, 'a HEAD refused with a bare 403');
  assert.equal(isAccessDenied(await putError('bad-signature')), false, 'another 403 code');
  assert.equal(isAccessDenied(await errorOf('missing')), false, '404');
  assert.equal(isAccessDenied(new Error('network')), false);
});
