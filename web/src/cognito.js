// Cognito user pool sign-in over its JSON API (plain fetch: InitiateAuth and
// RespondToAuthChallenge need no AWS signature), and a session that refreshes
// its access token with the refresh token before it expires.

import { AuthError, CredbrokerError, SignInError, UnavailableError } from './errors.js';
import { cognitoTimestamp, ephemeral, passwordClaim } from './srp.js';

/**
 * @typedef {'USER_SRP_AUTH' | 'USER_PASSWORD_AUTH'} SignInFlow
 *
 * @typedef {object} CognitoOptions
 * @property {string} clientId      the app client id (public; a browser client has no secret)
 * @property {string} [userPoolId]  needed for USER_SRP_AUTH (its name part enters the proof)
 * @property {string} [region]      defaults to the region the pool id starts with
 * @property {string} [endpoint]    another Cognito endpoint (the local stack's moto)
 * @property {number} [refreshMarginMs] refresh the access token this long before it expires (default 2 minutes)
 * @property {typeof globalThis.fetch} [fetch]
 * @property {() => number} [now]
 * @property {(n: number) => Uint8Array} [random] random bytes for SRP (tests pass fixed ones)
 *
 * @typedef {object} Tokens
 * @property {string} accessToken
 * @property {string} idToken
 * @property {string} refreshToken
 * @property {number} expiresAt  milliseconds since the epoch
 */

// Cognito exceptions that mean "try again later", not "wrong credentials".
const TRANSIENT = new Set(['TooManyRequestsException', 'InternalErrorException', 'LimitExceededException']);

export class CognitoAuth {
  /** @param {CognitoOptions} options */
  constructor(options) {
    if (!options?.clientId) throw new TypeError('CognitoAuth needs clientId');
    const region = options.region ?? options.userPoolId?.split('_')[0];
    if (!options.endpoint && !region) throw new TypeError('CognitoAuth needs a region, a userPoolId or an endpoint');
    this.clientId = options.clientId;
    this.userPoolId = options.userPoolId;
    this.endpoint = (options.endpoint ?? `https://cognito-idp.${region}.amazonaws.com`).replace(/\/+$/, '') + '/';
    this.refreshMarginMs = options.refreshMarginMs ?? 2 * 60_000;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.now = options.now ?? Date.now;
    this.random = options.random;
  }

  /**
   * Signs in. USER_SRP_AUTH (the default when userPoolId is known) proves the
   * password without sending it; USER_PASSWORD_AUTH sends it over TLS and
   * must be enabled on the app client.
   * @param {string} username
   * @param {string} password
   * @param {{flow?: SignInFlow}} [opts]
   * @returns {Promise<CognitoSession>}
   */
  async signIn(username, password, opts = {}) {
    if (!username || !password)
      throw new SignInError('Enter a username and a password.', { code: 'InvalidParameterException' });
    const flow = opts.flow ?? (this.userPoolId ? 'USER_SRP_AUTH' : 'USER_PASSWORD_AUTH');
    let out;
    if (flow === 'USER_PASSWORD_AUTH') {
      out = await this.call('InitiateAuth', {
        AuthFlow: 'USER_PASSWORD_AUTH',
        ClientId: this.clientId,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      });
    } else if (flow === 'USER_SRP_AUTH') {
      out = await this.#srp(username, password);
    } else {
      throw new TypeError(`unknown sign-in flow ${String(flow)}`);
    }
    return new CognitoSession(this, username, this.#tokens(out));
  }

  /**
   * @param {string} username
   * @param {string} password
   */
  async #srp(username, password) {
    if (!this.userPoolId) throw new TypeError('USER_SRP_AUTH needs userPoolId');
    const { a, A } = ephemeral(this.random);
    const start = await this.call('InitiateAuth', {
      AuthFlow: 'USER_SRP_AUTH',
      ClientId: this.clientId,
      AuthParameters: { USERNAME: username, SRP_A: A.toString(16) },
    });
    if (start.ChallengeName !== 'PASSWORD_VERIFIER') return start;
    const c = start.ChallengeParameters ?? {};
    for (const f of ['SRP_B', 'SALT', 'SECRET_BLOCK', 'USER_ID_FOR_SRP']) {
      if (typeof c[f] !== 'string') throw new SignInError(`Cognito's challenge lacks ${f}.`, { code: 'BadChallenge' });
    }
    const timestamp = cognitoTimestamp(new Date(this.now()));
    const signature = await passwordClaim({
      poolName: this.userPoolId.split('_')[1] ?? this.userPoolId,
      userId: c.USER_ID_FOR_SRP,
      password,
      a,
      A,
      srpB: c.SRP_B,
      salt: c.SALT,
      secretBlock: c.SECRET_BLOCK,
      timestamp,
    });
    return this.call('RespondToAuthChallenge', {
      ChallengeName: 'PASSWORD_VERIFIER',
      ClientId: this.clientId,
      Session: start.Session,
      ChallengeResponses: {
        // The proof is over USER_ID_FOR_SRP; USERNAME names the user the way
        // the challenge did (equal on Cognito; moto finds users only by name).
        USERNAME: c.USERNAME ?? c.USER_ID_FOR_SRP,
        PASSWORD_CLAIM_SECRET_BLOCK: c.SECRET_BLOCK,
        PASSWORD_CLAIM_SIGNATURE: signature,
        TIMESTAMP: timestamp,
      },
    });
  }

  /**
   * New tokens from a refresh token (REFRESH_TOKEN_AUTH).
   * @param {string} refreshToken
   * @returns {Promise<Tokens>}
   */
  async refresh(refreshToken) {
    const out = await this.call('InitiateAuth', {
      AuthFlow: 'REFRESH_TOKEN_AUTH',
      ClientId: this.clientId,
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
    return this.#tokens(out, refreshToken);
  }

  /**
   * @param {any} out
   * @param {string} [refreshToken] kept when Cognito does not rotate it
   * @returns {Tokens}
   */
  #tokens(out, refreshToken) {
    const r = out?.AuthenticationResult;
    if (!r) {
      throw new SignInError(
        out?.ChallengeName
          ? `Cognito asks for a further step (${out.ChallengeName}) that this page does not support.`
          : 'Cognito answered without tokens.',
        { code: 'ChallengeRequired', challengeName: out?.ChallengeName },
      );
    }
    if (typeof r.AccessToken !== 'string' || r.AccessToken === '') {
      throw new SignInError('Cognito answered without an access token.', { code: 'BadAnswer' });
    }
    const fromJwt = jwtExpiry(r.AccessToken);
    const fromAnswer = typeof r.ExpiresIn === 'number' ? this.now() + r.ExpiresIn * 1000 : undefined;
    const expiresAt = Math.min(fromJwt ?? Infinity, fromAnswer ?? Infinity);
    return {
      accessToken: r.AccessToken,
      idToken: r.IdToken ?? '',
      refreshToken: r.RefreshToken ?? refreshToken ?? '',
      expiresAt: Number.isFinite(expiresAt) ? expiresAt : this.now(),
    };
  }

  /**
   * One call of Cognito's JSON API.
   * @param {string} operation
   * @param {object} body
   * @returns {Promise<any>}
   */
  async call(operation, body) {
    let res;
    try {
      res = await this.fetch(this.endpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'X-Amz-Target': `AWSCognitoIdentityProviderService.${operation}`,
        },
        body: JSON.stringify(body),
        credentials: 'omit',
      });
    } catch (err) {
      throw new UnavailableError('Cognito could not be reached.', { code: 'network', cause: err });
    }
    /** @type {any} */
    let data;
    try {
      data = await res.json();
    } catch {
      data = undefined;
    }
    if (res.ok) return data ?? {};
    const type = String(data?.__type ?? data?.code ?? res.headers.get('x-amzn-ErrorType') ?? `http_${res.status}`);
    const code = type.split('#').pop()?.split(':')[0] || `http_${res.status}`;
    const message = String(data?.message ?? data?.Message ?? res.statusText);
    if (res.status >= 500 || TRANSIENT.has(code)) {
      throw new UnavailableError(`Cognito is unavailable: ${message}`, { code, status: res.status });
    }
    throw new SignInError(message || code, { code, status: res.status });
  }
}

/**
 * The `exp` of a JWT in milliseconds, undefined when unreadable. Display and
 * scheduling only: the endpoint verifies tokens, this never does.
 * @param {string} jwt
 */
function jwtExpiry(jwt) {
  const exp = decodeJwt(jwt)?.exp;
  return typeof exp === 'number' ? exp * 1000 : undefined;
}

/**
 * The payload of a JWT, unverified.
 * @param {string} jwt
 * @returns {Record<string, any> | undefined}
 */
export function decodeJwt(jwt) {
  try {
    const part = jwt.split('.')[1];
    const b64 = part
      .replace(/-/g, '+')
      .replace(/_/g, '/')
      .padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bin = atob(b64);
    const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const v = JSON.parse(json);
    return v && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A signed-in user's tokens, kept in memory only. It is a token source for
 * CredentialBroker: getAccessToken refreshes the access token shortly before
 * it expires, or at once when asked to (after the endpoint refused it).
 */
export class CognitoSession {
  /** @type {Tokens | undefined} */
  #tokens;
  /** @type {Promise<Tokens> | undefined} */
  #refreshing;

  /**
   * @param {CognitoAuth} auth
   * @param {string} username
   * @param {Tokens} tokens
   */
  constructor(auth, username, tokens) {
    this.auth = auth;
    this.username = username;
    this.#tokens = tokens;
  }

  get signedIn() {
    return this.#tokens !== undefined;
  }

  /** When the current access token expires (ms since the epoch). */
  get expiresAt() {
    return this.#tokens?.expiresAt;
  }

  /** The ID token (for APIs that want it; the credential endpoint wants the access token). */
  get idToken() {
    return this.#tokens?.idToken;
  }

  /** The access token's claims (sub, username, exp, ...), unverified: for display. */
  claims() {
    return this.#tokens ? (decodeJwt(this.#tokens.accessToken) ?? {}) : {};
  }

  /**
   * @param {{forceRefresh?: boolean}} [opts]
   * @returns {Promise<string>}
   */
  async getAccessToken(opts = {}) {
    const t = this.#tokens;
    if (!t) throw new AuthError('Not signed in.', { code: 'signed_out' });
    if (!opts.forceRefresh && this.auth.now() < t.expiresAt - this.auth.refreshMarginMs) return t.accessToken;
    return (await this.#refresh(t)).accessToken;
  }

  /** @param {Tokens} t */
  #refresh(t) {
    if (this.#refreshing) return this.#refreshing;
    if (!t.refreshToken) {
      this.#tokens = undefined;
      return Promise.reject(new AuthError('The session has ended: sign in again.', { code: 'signed_out' }));
    }
    const p = this.auth.refresh(t.refreshToken).then(
      (fresh) => {
        if (this.#tokens === t) this.#tokens = fresh;
        return fresh;
      },
      (err) => {
        // A refused refresh token ends the session; an outage does not.
        if (err instanceof CredbrokerError && !(err instanceof UnavailableError) && this.#tokens === t) {
          this.#tokens = undefined;
          throw new SignInError(`The session has ended: sign in again (${err.message}).`, {
            code: err.code,
            status: err.status,
            cause: err,
          });
        }
        throw err;
      },
    );
    this.#refreshing = p;
    const done = () => {
      if (this.#refreshing === p) this.#refreshing = undefined;
    };
    p.then(done, done);
    return p;
  }

  /** Forgets the tokens (they stay valid at Cognito until they expire). */
  signOut() {
    this.#tokens = undefined;
  }
}
