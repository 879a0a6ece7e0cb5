// A fake Cognito user pool for the tests: InitiateAuth (USER_PASSWORD_AUTH,
// USER_SRP_AUTH, REFRESH_TOKEN_AUTH) and RespondToAuthChallenge
// (PASSWORD_VERIFIER). Its SRP is the server side, written independently of
// src/srp.js on node:crypto: the group from OpenSSL's RFC 3526 table, every
// modular exponentiation by OpenSSL's Diffie-Hellman, HKDF by hkdfSync. It
// keeps only a salt and a verifier per user, as Cognito does, so a client
// passes only by computing the same session key.

import crypto from 'node:crypto';
import { startServer } from './fakes.js';

const group = crypto.getDiffieHellman('modp15'); // RFC 3526 3072-bit = RFC 5054's SRP group
const primeBuf = group.getPrime();
const N = BigInt(`0x${primeBuf.toString('hex')}`);
const G = 2n;

/** @param {bigint} n */
function padHex(n) {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex[0], 16) >= 8) hex = `00${hex}`;
  return hex;
}

/** @param {Buffer | string} data */
const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
/** @param {string} hex */
const hashOfHex = (hex) => BigInt(`0x${sha256hex(Buffer.from(hex, 'hex'))}`);

/**
 * base^exp mod N with OpenSSL: a DH key with private key `exp` turns the
 * peer key `base` into base^exp.
 * @param {bigint} base
 * @param {bigint} exp
 */
function modexp(base, exp) {
  const dh = crypto.createDiffieHellman(primeBuf, Buffer.from([2]));
  dh.setPrivateKey(Buffer.from(padHex(exp), 'hex'));
  return BigInt(`0x${dh.computeSecret(Buffer.from(padHex(base % N), 'hex')).toString('hex')}`);
}

const k = hashOfHex(padHex(N) + padHex(G));

/**
 * What Cognito stores at sign-up: salt and verifier v = g^x.
 * @param {string} poolName
 * @param {string} userId
 * @param {string} password
 */
function enroll(poolName, userId, password) {
  const salt = crypto.randomBytes(16).toString('hex');
  const inner = sha256hex(`${poolName}${userId}:${password}`);
  const x = hashOfHex(padHex(BigInt(`0x${salt}`)) + inner);
  return { salt, v: modexp(G, x) };
}

/** @param {Record<string, unknown>} payload */
function jwt(payload) {
  const enc = (/** @type {unknown} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', kid: 'fake' })}.${enc(payload)}.c2ln`;
}

const TIMESTAMP =
  /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [1-9]\d? \d\d:\d\d:\d\d UTC \d{4}$/;

/**
 * @param {{poolId?: string, clientId?: string, users: Record<string, string>, now?: () => number, lifetimeS?: number}} opts
 */
export async function startFakeCognito(opts) {
  const poolId = opts.poolId ?? 'us-east-1_TestPool1';
  const clientId = opts.clientId ?? 'client-1';
  const poolName = poolId.split('_')[1];
  const now = opts.now ?? Date.now;
  const lifetimeS = opts.lifetimeS ?? 900;
  /** @type {Map<string, {id: string, password: string, salt: string, v: bigint}>} */
  const users = new Map();
  for (const [name, password] of Object.entries(opts.users)) {
    const id = crypto.randomUUID();
    users.set(name, { id, password, ...enroll(poolName, id, password) });
  }
  /** @type {Map<string, {name: string, A: bigint, B: bigint, b: bigint, secretBlock: string}>} */
  const challenges = new Map();
  /** @type {Map<string, string>} refresh token -> user name */
  const refreshTokens = new Map();
  const state = {
    issued: 0,
    rotateRefresh: false,
    /** @type {{status: number, type: string, message: string} | undefined} */
    failNext: undefined,
    /** @type {{ChallengeName: string} | undefined} */
    challengeNext: undefined,
  };

  /** @param {string} name */
  function tokens(name, withRefresh = true) {
    state.issued += 1;
    const u = /** @type {{id: string}} */ (users.get(name));
    const exp = Math.floor(now() / 1000) + lifetimeS;
    const access = jwt({ sub: u.id, username: name, token_use: 'access', client_id: clientId, exp, n: state.issued });
    /** @type {Record<string, unknown>} */
    const r = {
      AccessToken: access,
      IdToken: jwt({ sub: u.id, token_use: 'id', exp }),
      ExpiresIn: lifetimeS,
      TokenType: 'Bearer',
    };
    if (withRefresh) {
      const rt = `refresh-${crypto.randomUUID()}`;
      refreshTokens.set(rt, name);
      r.RefreshToken = rt;
    }
    return { AuthenticationResult: r, ChallengeParameters: {} };
  }

  /**
   * @param {string} type
   * @param {string} message
   */
  const fail = (type, message, status = 400) => ({ status, json: { __type: type, message } });

  const server = await startServer((req) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    if (req.headers['content-type'] !== 'application/x-amz-json-1.1')
      return fail('SerializationException', 'bad content type');
    if (state.failNext) {
      const f = state.failNext;
      state.failNext = undefined;
      return fail(f.type, f.message, f.status);
    }
    const body = JSON.parse(req.body);
    if (body.ClientId !== clientId) return fail('ResourceNotFoundException', 'no such client');
    if (target === 'AWSCognitoIdentityProviderService.InitiateAuth') {
      const p = body.AuthParameters ?? {};
      if (body.AuthFlow === 'USER_PASSWORD_AUTH') {
        const u = users.get(p.USERNAME);
        if (!u || u.password !== p.PASSWORD) return fail('NotAuthorizedException', 'Incorrect username or password.');
        if (state.challengeNext) {
          const c = state.challengeNext;
          state.challengeNext = undefined;
          return { json: { ...c, Session: 's', ChallengeParameters: {} } };
        }
        return { json: tokens(p.USERNAME) };
      }
      if (body.AuthFlow === 'REFRESH_TOKEN_AUTH') {
        const name = refreshTokens.get(p.REFRESH_TOKEN);
        if (!name) return fail('NotAuthorizedException', 'Invalid Refresh Token');
        if (state.rotateRefresh) {
          refreshTokens.delete(p.REFRESH_TOKEN);
          return { json: tokens(name, true) };
        }
        return { json: tokens(name, false) };
      }
      if (body.AuthFlow === 'USER_SRP_AUTH') {
        const u = users.get(p.USERNAME);
        if (!u) return fail('NotAuthorizedException', 'Incorrect username or password.');
        const A = BigInt(`0x${p.SRP_A}`);
        if (A % N === 0n) return fail('NotAuthorizedException', 'bad A');
        const b = BigInt(`0x${crypto.randomBytes(32).toString('hex')}`);
        const B = (k * u.v + modexp(G, b)) % N;
        const session = crypto.randomUUID();
        const secretBlock = crypto.randomBytes(64).toString('base64');
        challenges.set(session, { name: p.USERNAME, A, B, b, secretBlock });
        return {
          json: {
            ChallengeName: 'PASSWORD_VERIFIER',
            Session: session,
            ChallengeParameters: {
              SALT: u.salt,
              SRP_B: B.toString(16),
              SECRET_BLOCK: secretBlock,
              USERNAME: u.id,
              USER_ID_FOR_SRP: u.id,
            },
          },
        };
      }
      return fail('InvalidParameterException', `flow ${body.AuthFlow}`);
    }
    if (target === 'AWSCognitoIdentityProviderService.RespondToAuthChallenge') {
      const c = challenges.get(body.Session);
      challenges.delete(body.Session);
      const r = body.ChallengeResponses ?? {};
      if (!c || body.ChallengeName !== 'PASSWORD_VERIFIER') return fail('NotAuthorizedException', 'Invalid session');
      const u = /** @type {{id: string, v: bigint}} */ (users.get(c.name));
      if (
        r.USERNAME !== u.id ||
        r.PASSWORD_CLAIM_SECRET_BLOCK !== c.secretBlock ||
        !TIMESTAMP.test(r.TIMESTAMP ?? '')
      ) {
        return fail('NotAuthorizedException', 'Incorrect username or password.');
      }
      const uHash = hashOfHex(padHex(c.A) + padHex(c.B));
      const S = modexp((c.A * modexp(u.v, uHash)) % N, c.b);
      const key = Buffer.from(
        crypto.hkdfSync(
          'sha256',
          Buffer.from(padHex(S), 'hex'),
          Buffer.from(padHex(uHash), 'hex'),
          'Caldera Derived Key',
          16,
        ),
      );
      const expected = crypto
        .createHmac('sha256', key)
        .update(
          Buffer.concat([
            Buffer.from(poolName),
            Buffer.from(u.id),
            Buffer.from(c.secretBlock, 'base64'),
            Buffer.from(r.TIMESTAMP),
          ]),
        )
        .digest();
      const got = Buffer.from(String(r.PASSWORD_CLAIM_SIGNATURE ?? ''), 'base64');
      if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) {
        return fail('NotAuthorizedException', 'Incorrect username or password.');
      }
      return { json: tokens(c.name) };
    }
    return fail('UnknownOperationException', target);
  });
  return { ...server, poolId, clientId, state, refreshTokens };
}
