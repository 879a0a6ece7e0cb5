// The README's browser example made to run against the local stack
// (`make run`) with Node.js 20+: sign a user in, get credentials for one
// bucket from the credential endpoint, and list the bucket with the AWS SDK
// for JavaScript v3.
//
//   SEED=1 make run                  # in another terminal
//   make test-web                    # once: npm ci in web/
//   CREDBROKER_PASSWORD='Demo-Passw0rd!' node web/examples/local.mjs --bucket demo-curated --prefix team-a/
//
// Against the local stack three things differ from a deployed one: Cognito
// and S3 are moto at the stack file's awsEndpoint (`endpoint` below), S3
// uses path-style URLs (`forcePathStyle`: moto serves buckets as paths, not
// host names), and sign-in uses the password flow (moto runs SRP without
// checking the proof, so there SRP would accept any password). In a browser
// page the same code runs with the module's bundle (web/dist/credbroker.js).
//
// Exit status: 0 listed; 2 usage (flags, no password, no stack file, a
// refused sign-in); 3 failure (no access, the stack unreachable, S3's
// refusal).

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  CognitoAuth,
  CredbrokerError,
  CredentialBroker,
  NoAccessError,
  SignInError,
  explainS3Error,
} from '@credbroker/web';

/** @param {number} status @param {string} message @returns {never} */
function fail(status, message) {
  console.error(`local.mjs: ${message}`);
  process.exit(status);
}

/** @type {{stack: string, username: string, bucket: string, prefix: string}} */
let opts;
try {
  opts = /** @type {any} */ (
    parseArgs({
      options: {
        stack: { type: 'string', default: '.local/stack.json' }, // `make run` writes it; run from the checkout's root
        username: { type: 'string', default: 'demo' },
        bucket: { type: 'string', default: 'demo-raw' },
        prefix: { type: 'string', default: '' },
      },
    }).values
  );
} catch (err) {
  fail(
    2,
    `${err instanceof Error ? err.message : err} (flags: --stack FILE --username NAME --bucket NAME --prefix FOLDER/)`,
  );
}
const { stack: stackFile, username, bucket, prefix } = opts;
const password = process.env.CREDBROKER_PASSWORD;
if (!password) fail(2, `set CREDBROKER_PASSWORD to ${username}'s password (the seeded demo user's is Demo-Passw0rd!)`);
/** @type {{region: string, awsEndpoint: string, apiUrl: string, userPoolId: string, userPoolClientId: string}} */
const stack = await readFile(stackFile, 'utf8').then(
  (text) => {
    try {
      return JSON.parse(text);
    } catch (err) {
      fail(2, `${stackFile} is not a stack file: ${err instanceof Error ? err.message : err}`);
    }
  },
  (err) =>
    fail(
      2,
      err?.code === 'ENOENT'
        ? `${stackFile} does not exist: start the local stack with \`SEED=1 make run\` first, or name its stack file with --stack`
        : `${stackFile}: ${err?.message ?? err}`,
    ),
);
for (const f of /** @type {const} */ (['region', 'awsEndpoint', 'apiUrl', 'userPoolId', 'userPoolClientId'])) {
  if (typeof stack?.[f] !== 'string') fail(2, `${stackFile} is not a local stack's stack file: it has no ${f}`);
}

try {
  // 1. Sign in with the password flow, at the local stack's Cognito (moto).
  const auth = new CognitoAuth({
    clientId: stack.userPoolClientId,
    userPoolId: stack.userPoolId,
    region: stack.region,
    endpoint: stack.awsEndpoint,
  });
  const session = await auth.signIn(username, password, { flow: 'USER_PASSWORD_AUTH' });

  // 2. The user's credentials, from the credential endpoint, for this bucket.
  const broker = new CredentialBroker({ apiUrl: stack.apiUrl, tokens: session });
  const s3 = new S3Client({
    region: stack.region,
    endpoint: stack.awsEndpoint, // moto
    forcePathStyle: true, // moto serves buckets as paths
    credentials: broker.credentialsFor(bucket, { key: prefix || undefined }),
  });
  s3.middlewareStack.use(broker.s3Plugin()); // AccessDenied: fresh credentials, one retry

  // 3. List the bucket (or the folder).
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined }));
  for (const o of out.Contents ?? []) console.log(`s3://${bucket}/${o.Key}\t${o.Size} bytes`);
} catch (err) {
  if (err instanceof SignInError && err.code === 'NotAuthorizedException') {
    fail(
      2,
      `${err.message} Check --username and CREDBROKER_PASSWORD; each \`make run\` starts a new user pool, and \`SEED=1\` adds demo / Demo-Passw0rd!.`,
    );
  }
  if (err instanceof NoAccessError) {
    fail(
      3,
      `${err.message} See the user's grants with \`credbroker admin explain --stack ${stackFile} --username ${username}\`.`,
    );
  }
  if (err instanceof CredbrokerError) {
    fail(3, `${err.message} Is the local stack of ${stackFile} running (\`SEED=1 make run\`)?`);
  }
  fail(3, explainS3Error(err, { bucket, key: prefix, endpoint: stack.awsEndpoint }).message);
}
