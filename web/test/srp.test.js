// SRP math: fixed vectors for the encodings, a cross-check against AWS's own
// client (amazon-cognito-identity-js, which works against real Cognito), and
// full sign-ins against the fake Cognito's independent server side.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import {
  N,
  base64ToBytes,
  cognitoTimestamp,
  ephemeral,
  modPow,
  multiplier,
  padHex,
  passwordClaim,
  sessionKey,
} from '../src/srp.js';
import { CognitoAuth } from '../src/cognito.js';
import { SignInError } from '../src/errors.js';
import { startFakeCognito } from './fakecognito.js';

const require = createRequire(import.meta.url);
const { AuthenticationHelper } = require('amazon-cognito-identity-js');
const BigInteger = require('amazon-cognito-identity-js/lib/BigInteger.js').default;

test('padHex gives even-length hex with a 00 before a set top bit', () => {
  const cases = [
    [0n, '00'],
    [0x7fn, '7f'],
    [0x80n, '0080'],
    [0x100n, '0100'],
    [0xabcn, '0abc'],
    [0xffffn, '00ffff'],
  ];
  for (const [n, hex] of cases) assert.equal(padHex(/** @type {bigint} */ (n)), hex, `padHex(${n})`);
  assert.throws(() => padHex(-1n), RangeError);
});

test('the timestamp has Cognito layout: unpadded day, padded time, UTC', () => {
  assert.equal(cognitoTimestamp(new Date(Date.UTC(2024, 0, 5, 3, 4, 5))), 'Fri Jan 5 03:04:05 UTC 2024');
  assert.equal(cognitoTimestamp(new Date(Date.UTC(2026, 11, 31, 23, 59, 9))), 'Thu Dec 31 23:59:09 UTC 2026');
});

test('base64 decoding is as lenient as node Buffer (moto sends a UUID as secret block)', () => {
  for (const s of [
    crypto.randomBytes(61).toString('base64'),
    crypto.randomBytes(30).toString('base64url'),
    crypto.randomUUID(),
    'YWJj\nZGVm',
  ]) {
    assert.deepEqual(Buffer.from(base64ToBytes(s)), Buffer.from(s, 'base64'), s);
  }
});

test('modPow agrees with OpenSSL Diffie-Hellman on the 3072-bit group', () => {
  const prime = crypto.getDiffieHellman('modp15').getPrime();
  assert.equal(BigInt(`0x${prime.toString('hex')}`), N);
  for (let i = 0; i < 3; i++) {
    const exp = crypto.randomBytes(64);
    const base = crypto.randomBytes(300);
    const dh = crypto.createDiffieHellman(prime, Buffer.from([2]));
    dh.setPrivateKey(exp);
    const want = BigInt(`0x${dh.computeSecret(base).toString('hex')}`);
    assert.equal(modPow(BigInt(`0x${base.toString('hex')}`), BigInt(`0x${exp.toString('hex')}`), N), want);
  }
});

test('k, A, the session key and the claim match amazon-cognito-identity-js for the same inputs', async () => {
  const fixed = crypto.randomBytes(128);
  const { a, A } = ephemeral(() => new Uint8Array(fixed));

  const ref = new AuthenticationHelper('TestPool1');
  assert.equal((await multiplier()).toString(16), ref.k.toString(16), 'k');
  ref.smallAValue = new BigInteger(fixed.toString('hex'), 16);
  ref.largeAValue = undefined;
  const refA = await new Promise((resolve, reject) =>
    ref.getLargeAValue((/** @type {any} */ e, /** @type {any} */ v) => (e ? reject(e) : resolve(v))),
  );
  assert.equal(A.toString(16), refA.toString(16), 'A');

  for (let i = 0; i < 4; i++) {
    // Vary the inputs so both branches of padHex (top bit set or not) occur.
    const srpB = crypto
      .randomBytes(384)
      .toString('hex')
      .replace(/^./, i % 2 ? '9' : '1');
    const salt = crypto
      .randomBytes(16)
      .toString('hex')
      .replace(/^./, i < 2 ? 'f' : '3');
    const userId = crypto.randomUUID();
    const password = `Pässwörd-${i}!`;
    const secretBlock = crypto.randomBytes(64).toString('base64');
    const timestamp = 'Sun Mar 1 12:00:00 UTC 2026';

    const refKey = await new Promise((resolve, reject) =>
      ref.getPasswordAuthenticationKey(
        userId,
        password,
        new BigInteger(srpB, 16),
        new BigInteger(salt, 16),
        (/** @type {any} */ e, /** @type {any} */ v) => (e ? reject(e) : resolve(v)),
      ),
    );
    const key = await sessionKey({ poolName: 'TestPool1', userId, password, a, A, srpB, salt });
    assert.equal(Buffer.from(key).toString('hex'), Buffer.from(refKey).toString('hex'), `session key ${i}`);

    // The claim as AWS's client builds it from that key.
    const refClaim = crypto
      .createHmac('sha256', Buffer.from(refKey))
      .update(
        Buffer.concat([
          Buffer.from('TestPool1'),
          Buffer.from(userId),
          Buffer.from(secretBlock, 'base64'),
          Buffer.from(timestamp),
        ]),
      )
      .digest('base64');
    const claim = await passwordClaim({
      poolName: 'TestPool1',
      userId,
      password,
      a,
      A,
      srpB,
      salt,
      secretBlock,
      timestamp,
    });
    assert.equal(claim, refClaim, `claim ${i}`);
  }
});

test('USER_SRP_AUTH signs in against the server-side SRP, and a wrong password is refused', async () => {
  const cognito = await startFakeCognito({ poolId: 'eu-west-1_SrpPool9', users: { alice: 'correct horse battery' } });
  try {
    const auth = new CognitoAuth({ clientId: cognito.clientId, userPoolId: cognito.poolId, endpoint: cognito.url });
    for (let i = 0; i < 3; i++) {
      const session = await auth.signIn('alice', 'correct horse battery');
      assert.equal(session.claims().username, 'alice');
    }
    const initiate = cognito.requests.filter((r) => r.headers['x-amz-target']?.toString().endsWith('.InitiateAuth'));
    assert.ok(
      initiate.every((r) => !r.body.includes('correct horse')),
      'the password never leaves the client',
    );

    await assert.rejects(auth.signIn('alice', 'correct horse battery!'), (err) => {
      assert.ok(err instanceof SignInError);
      assert.equal(err.code, 'NotAuthorizedException');
      return true;
    });
  } finally {
    await cognito.close();
  }
});
