// Cognito sign-in and token refresh against the fake Cognito.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CognitoAuth } from '../src/cognito.js';
import { CredentialBroker } from '../src/broker.js';
import { AuthError, SignInError, UnavailableError } from '../src/errors.js';
import { startFakeCognito } from './fakecognito.js';
import { FakeClock, MINUTE, answer, errorReply, startServer } from './fakes.js';

/**
 * @param {import('node:test').TestContext} t
 */
async function setup(t) {
  const clock = new FakeClock();
  const cognito = await startFakeCognito({ users: { bob: 'Bob-Passw0rd!' }, now: clock.now, lifetimeS: 900 });
  t.after(() => cognito.close());
  const auth = new CognitoAuth({
    clientId: cognito.clientId,
    region: 'us-east-1',
    endpoint: cognito.url,
    now: clock.now,
  });
  return { clock, cognito, auth };
}

/** @param {{body: string}} r */
const flowOf = (r) => JSON.parse(r.body).AuthFlow;

test('USER_PASSWORD_AUTH signs in with the JSON API and keeps the tokens', async (t) => {
  const { auth, cognito, clock } = await setup(t);
  const session = await auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' });
  assert.equal(session.signedIn, true);
  assert.equal(session.expiresAt, clock.now() + 900_000);
  assert.equal(session.claims().username, 'bob');
  const token = await session.getAccessToken();
  assert.equal(token.split('.').length, 3);
  const [req] = cognito.requests;
  assert.equal(req.method, 'POST');
  assert.equal(req.url, '/');
  assert.equal(req.headers['x-amz-target'], 'AWSCognitoIdentityProviderService.InitiateAuth');
  assert.deepEqual(JSON.parse(req.body), {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: cognito.clientId,
    AuthParameters: { USERNAME: 'bob', PASSWORD: 'Bob-Passw0rd!' },
  });
  assert.equal(cognito.requests.length, 1, 'getAccessToken used the token it had');
});

test('without userPoolId the default flow is USER_PASSWORD_AUTH; with it, USER_SRP_AUTH', async (t) => {
  const { auth, cognito } = await setup(t);
  await auth.signIn('bob', 'Bob-Passw0rd!');
  const srp = new CognitoAuth({ clientId: cognito.clientId, userPoolId: cognito.poolId, endpoint: cognito.url });
  await srp.signIn('bob', 'Bob-Passw0rd!');
  assert.deepEqual(cognito.requests.map(flowOf), ['USER_PASSWORD_AUTH', 'USER_SRP_AUTH', undefined]);
});

test('sign-in refusals are SignInErrors with the Cognito code', async (t) => {
  const { auth, cognito } = await setup(t);
  const cases = [
    { name: 'wrong password', user: 'bob', password: 'nope', code: 'NotAuthorizedException', type: SignInError },
    { name: 'unknown user', user: 'eve', password: 'x', code: 'NotAuthorizedException', type: SignInError },
    { name: 'empty password', user: 'bob', password: '', code: 'InvalidParameterException', type: SignInError },
  ];
  for (const c of cases) {
    await assert.rejects(auth.signIn(c.user, c.password, { flow: 'USER_PASSWORD_AUTH' }), (/** @type {any} */ err) => {
      assert.ok(err instanceof c.type, c.name);
      assert.equal(err.code, c.code, c.name);
      return true;
    });
  }
  cognito.state.challengeNext = { ChallengeName: 'NEW_PASSWORD_REQUIRED' };
  await assert.rejects(
    auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' }),
    (/** @type {any} */ err) => {
      assert.ok(err instanceof SignInError);
      assert.equal(err.code, 'ChallengeRequired');
      assert.equal(err.challengeName, 'NEW_PASSWORD_REQUIRED');
      return true;
    },
  );
  cognito.state.failNext = {
    status: 400,
    type: 'com.amazonaws.cognito#TooManyRequestsException',
    message: 'Rate exceeded',
  };
  await assert.rejects(
    auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' }),
    (/** @type {any} */ err) => {
      assert.ok(err instanceof UnavailableError, 'throttling is not a wrong password');
      assert.equal(err.code, 'TooManyRequestsException');
      return true;
    },
  );
});

test('the access token is refreshed with REFRESH_TOKEN_AUTH two minutes before it expires', async (t) => {
  const { auth, cognito, clock } = await setup(t);
  const session = await auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' });
  const first = await session.getAccessToken();
  clock.advance(13 * MINUTE - 1);
  assert.equal(await session.getAccessToken(), first);
  assert.equal(cognito.requests.length, 1);
  clock.advance(1);
  const [a, b, c] = await Promise.all([session.getAccessToken(), session.getAccessToken(), session.getAccessToken()]);
  assert.notEqual(a, first);
  assert.ok(a === b && b === c, 'concurrent callers share one refresh');
  assert.equal(cognito.requests.length, 2);
  assert.deepEqual(JSON.parse(cognito.requests[1].body).AuthParameters.REFRESH_TOKEN.startsWith('refresh-'), true);
  assert.equal(flowOf(cognito.requests[1]), 'REFRESH_TOKEN_AUTH');
  assert.equal(session.expiresAt, clock.now() + 900_000);

  // Cognito did not rotate the refresh token: the same one still works.
  const forced = await session.getAccessToken({ forceRefresh: true });
  assert.notEqual(forced, a);
  assert.equal(
    JSON.parse(cognito.requests[2].body).AuthParameters.REFRESH_TOKEN,
    JSON.parse(cognito.requests[1].body).AuthParameters.REFRESH_TOKEN,
  );
});

test('a refused refresh token ends the session; an outage does not', async (t) => {
  const { auth, cognito } = await setup(t);
  const session = await auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' });

  cognito.state.failNext = { status: 500, type: 'InternalErrorException', message: 'try later' };
  await assert.rejects(session.getAccessToken({ forceRefresh: true }), UnavailableError);
  assert.equal(session.signedIn, true);

  cognito.refreshTokens.clear(); // revoked, or expired
  await assert.rejects(session.getAccessToken({ forceRefresh: true }), (/** @type {any} */ err) => {
    assert.ok(err instanceof SignInError);
    assert.equal(err.code, 'NotAuthorizedException');
    assert.match(err.message, /sign in again/);
    return true;
  });
  assert.equal(session.signedIn, false);
  await assert.rejects(
    session.getAccessToken(),
    (/** @type {any} */ err) => err instanceof AuthError && err.code === 'signed_out',
  );
});

test('the broker refreshes a refused Cognito token once and retries', async (t) => {
  const { auth, cognito } = await setup(t);
  const session = await auth.signIn('bob', 'Bob-Passw0rd!', { flow: 'USER_PASSWORD_AUTH' });
  const firstToken = await session.getAccessToken();
  const body = answer({ sets: [{ name: 'A', expiresAt: Date.now() + 15 * MINUTE, grants: [{ bucket: 'b' }] }] });
  const endpoint = await startServer((req) =>
    req.headers.authorization === `Bearer ${firstToken}` ? errorReply('invalid_token', 'revoked', 401) : { json: body },
  );
  t.after(() => endpoint.close());
  const broker = new CredentialBroker({ apiUrl: endpoint.url, tokens: session });
  assert.equal((await broker.credentialsFor('b')()).accessKeyId, 'AKIAA');
  assert.equal(endpoint.requests.length, 2);
  assert.notEqual(endpoint.requests[1].headers.authorization, `Bearer ${firstToken}`);
  assert.deepEqual(cognito.requests.map(flowOf), ['USER_PASSWORD_AUTH', 'REFRESH_TOKEN_AUTH']);
});
