// Drives the module against a running stack from node, as the demo page does
// in a browser: sign in (SRP, then password), fetch the grants, list every
// place, upload where writable and expect a refusal where read-only.
//
//   node scripts/smoke.mjs ../.local/stack.json demo 'Demo-Passw0rd!'
//
// On moto it also checks the routing for real: the access key that signed
// each S3 request must be one whose session policy (as STS received it)
// names that place. Every failed step is one FAIL line that says what to do
// next, never a stack trace. Exit status 0 when every step behaved, 1 when
// one did not, 2 for a wrong command line or stack file.

import { readFile } from 'node:fs/promises';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CognitoAuth, CredentialBroker, ReadOnlyError, explainS3Error } from '../src/index.js';

const [stackFile, username, password] = process.argv.slice(2);
if (!stackFile || !username || !password) {
  console.error('usage: node scripts/smoke.mjs STACK_JSON USERNAME PASSWORD');
  process.exit(2);
}
/** @type {Record<string, string>} */
const stack = await readFile(stackFile, 'utf8').then(JSON.parse, (/** @type {any} */ err) => {
  console.error(
    err?.code === 'ENOENT'
      ? `${stackFile} does not exist: start the local stack with \`SEED=1 make run\` first (it writes .local/stack.json).`
      : `${stackFile}: ${err?.message ?? err}`,
  );
  process.exit(2);
});
for (const f of ['region', 'awsEndpoint', 'apiUrl', 'userPoolId', 'userPoolClientId']) {
  if (typeof stack?.[f] !== 'string') {
    console.error(`${stackFile} is not a local stack's stack file: it lacks "${f}".`);
    process.exit(2);
  }
}
let failed = false;
/** @param {boolean} ok @param {string} what */
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};
/** @param {unknown} err */
const words = (err) => (err instanceof Error ? err.message : String(err));
/** A step that cannot go on: its FAIL line and the exit. @param {string} what @param {string} next @returns {never} */
const stop = (what, next) => {
  check(false, `${what} ${next}`);
  process.exit(1);
};
const stackRunning = `Is the stack of ${stackFile} running (\`SEED=1 make run\`)?`;

const auth = new CognitoAuth({
  clientId: stack.userPoolClientId,
  userPoolId: stack.userPoolId,
  region: stack.region,
  endpoint: stack.awsEndpoint,
});
await auth.signIn(username, password, { flow: 'USER_SRP_AUTH' }).then(
  (s) => check(s.signedIn, 'sign-in with USER_SRP_AUTH'),
  (err) => check(false, `sign-in with USER_SRP_AUTH: ${words(err)} ${stackRunning}`),
);
const session = await auth
  .signIn(username, password, { flow: 'USER_PASSWORD_AUTH' })
  .catch((err) =>
    stop(
      `sign-in with USER_PASSWORD_AUTH: ${words(err)}`,
      err?.code === 'NotAuthorizedException' || err?.code === 'UserNotFoundException'
        ? `Check the username and password (the seeded user is demo / Demo-Passw0rd!; a restarted stack has a new user pool).`
        : stackRunning,
    ),
  );
check(session.signedIn, 'sign-in with USER_PASSWORD_AUTH');
const refreshed = await session.getAccessToken({ forceRefresh: true }).then(
  () => '',
  (err) => words(err),
);
check(refreshed === '', `token refresh with REFRESH_TOKEN_AUTH${refreshed && `: ${refreshed}`}`);

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
const grants = await broker
  .grants()
  .catch((err) =>
    stop(
      `fetch the grants from ${stack.apiUrl}: ${words(err)}`,
      err?.code === 'no_access'
        ? `Give ${username} a project with a bucket (\`credbroker admin member put --stack ${stackFile} --username ${username} --project demo\`).`
        : stackRunning,
    ),
  );
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
  /** @param {unknown} err @param {string | undefined} key @param {'list' | 'upload'} action */
  const explain = (err, key, action) =>
    explainS3Error(err, { bucket: g.bucket, key, action, endpoint: stack.awsEndpoint, projects: g.projects }).message;
  const listed = await client(g.prefix || undefined)
    .send(new ListObjectsV2Command({ Bucket: g.bucket, Prefix: g.prefix || undefined }))
    .then(
      (out) => ({ keys: (out.Contents ?? []).map((o) => o.Key) }),
      (err) => ({ error: explain(err, g.prefix, 'list') }),
    );
  if ('error' in listed) {
    // The other checks of this place need a bucket that answers.
    check(false, `list ${place} (${g.access}, set ${g.setIndex}): ${listed.error}`);
    continue;
  }
  check(true, `list ${place} (${g.access}, set ${g.setIndex}): ${listed.keys.join(', ') || 'empty'}`);
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
  if (g.access === 'write') {
    check(put === 'stored', `upload to ${place}: ${put === 'stored' ? put : explain(put, key, 'upload')}`);
  } else {
    check(put instanceof ReadOnlyError, `upload to ${place} refused: ${put instanceof Error ? put.message : put}`);
  }
}
process.exit(failed ? 1 : 0);
