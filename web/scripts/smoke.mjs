// Drives the module against a running stack from node, as the demo page does
// in a browser: sign in (SRP, then password), fetch the grants, list every
// place, upload where writable and expect a refusal where read-only.
//
//   node scripts/smoke.mjs ../.local/stack.json demo 'Demo-Passw0rd!'
//
// On moto it also checks the routing for real: the access key that signed
// each S3 request must be one whose session policy (as STS received it)
// names that place. Exit status 0 when every step behaved, 1 otherwise.

import { readFile } from 'node:fs/promises';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CognitoAuth, CredentialBroker, ReadOnlyError } from '../src/index.js';

const [stackFile, username, password] = process.argv.slice(2);
if (!stackFile || !username || !password) {
  console.error('usage: node scripts/smoke.mjs STACK_JSON USERNAME PASSWORD');
  process.exit(2);
}
const stack = JSON.parse(await readFile(stackFile, 'utf8'));
let failed = false;
/** @param {boolean} ok @param {string} what */
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};

const auth = new CognitoAuth({
  clientId: stack.userPoolClientId,
  userPoolId: stack.userPoolId,
  region: stack.region,
  endpoint: stack.awsEndpoint,
});
await auth.signIn(username, password, { flow: 'USER_SRP_AUTH' }).then(
  (s) => check(s.signedIn, 'sign-in with USER_SRP_AUTH'),
  (err) => check(false, `sign-in with USER_SRP_AUTH: ${err.message}`),
);
const session = await auth.signIn(username, password, { flow: 'USER_PASSWORD_AUTH' });
check(session.signedIn, 'sign-in with USER_PASSWORD_AUTH');
const refreshed = await session.getAccessToken({ forceRefresh: true }).then(
  () => true,
  (err) => (console.error(err), false),
);
check(refreshed, 'token refresh with REFRESH_TOKEN_AUTH');

const broker = new CredentialBroker({ apiUrl: stack.apiUrl, tokens: session });

// Session policies by access key, from moto's state (absent elsewhere).
/** @type {Map<string, string> | undefined} */
let policies;
const refreshPolicies = async () => {
  const res = await fetch(`${stack.awsEndpoint}/moto-api/data.json`).catch(() => undefined);
  if (!res?.ok) return;
  const data = await res.json();
  policies = new Map((data.sts?.AssumedRole ?? []).map((/** @type {any} */ r) => [r.access_key_id, String(r.policy)]));
};
/** @type {string[]} */
const signedWith = [];
const grants = await broker.grants();
check(grants.length > 0, `${grants.length} grants`);
for (const g of grants) {
  const place = `s3://${g.bucket}/${g.prefix}`;
  const client = (/** @type {string | undefined} */ key, /** @type {'write' | undefined} */ access) => {
    const c = new S3Client({
      region: stack.region,
      endpoint: stack.awsEndpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      credentials: broker.credentialsFor(g.bucket, { key, access }),
    });
    c.middlewareStack.use(broker.s3Plugin());
    c.middlewareStack.addRelativeTo(
      (/** @type {any} */ next) => async (/** @type {any} */ args) => {
        signedWith.push(/Credential=([^/]+)\//.exec(args.request.headers.authorization ?? '')?.[1] ?? '');
        return next(args);
      },
      { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'smokeCaptureKey' },
    );
    return c;
  };
  const listed = await client(g.prefix || undefined)
    .send(new ListObjectsV2Command({ Bucket: g.bucket, Prefix: g.prefix || undefined }))
    .then((out) => (out.Contents ?? []).map((o) => o.Key));
  check(true, `list ${place} (${g.access}, set ${g.setIndex}): ${listed.join(', ') || 'empty'}`);
  const keyId = signedWith.at(-1) ?? '';
  if (!policies?.has(keyId)) await refreshPolicies();
  if (policies) {
    const policy = policies.get(keyId) ?? '';
    check(
      policy.includes(`arn:aws:s3:::${g.bucket}/${g.prefix}*`),
      `signed with ${keyId}, whose session policy covers ${place}`,
    );
  }
  const key = `${g.prefix}credbroker-smoke.txt`;
  const put = await client(key, 'write')
    .send(new PutObjectCommand({ Bucket: g.bucket, Key: key, Body: 'smoke\n' }))
    .then(
      () => 'stored',
      (err) => err,
    );
  if (g.access === 'write') check(put === 'stored', `upload to ${place}: ${put}`);
  else check(put instanceof ReadOnlyError, `upload to ${place} refused: ${put instanceof Error ? put.message : put}`);
}
process.exit(failed ? 1 : 0);
