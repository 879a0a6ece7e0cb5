// CredentialBroker: fetches the user's credential sets from the endpoint,
// keeps them until shortly before they expire, and hands the AWS SDK for
// JavaScript v3 one credential provider per bucket (or bucket and key) that
// routes to the set whose grants cover it.

import { grantsOf, parseAnswer, route } from './answer.js';
import { AuthError, CredbrokerError, EndpointError, NoAccessError, UnavailableError } from './errors.js';

/**
 * @typedef {import('./answer.js').Answer} Answer
 * @typedef {import('./answer.js').Access} Access
 *
 * @typedef {object} TokenRequest
 * @property {boolean} [forceRefresh] the endpoint refused the last token: get a new one
 *
 * @typedef {{getAccessToken(req?: TokenRequest): Promise<string>}} TokenSource
 *
 * @typedef {object} BrokerOptions
 * @property {string} apiUrl base URL of the credential endpoint (the API's URL, without /auths/resources)
 * @property {TokenSource | ((req?: TokenRequest) => Promise<string>)} tokens gives Cognito access tokens (a CognitoSession is one)
 * @property {number} [refreshMarginMs] refetch this long before the earliest expiry (default 5 minutes, the SDK's own margin)
 * @property {number} [minFreshMs] an answer is kept at least this long, whatever its expiry says (default 10 s; bounds refetches under clock skew)
 * @property {number} [recheckAfterMs] a place missing from an answer older than this is looked up once more (default 30 s)
 * @property {number} [maxRetries] retries after 503 or 429 (default 2)
 * @property {number} [maxRetryAfterMs] longest Retry-After waited for; a longer one fails at once (default 20 s)
 * @property {(change: {previous: string, current: Answer}) => void} [onPolicyChange] called when an answer carries a new policyVersion
 * @property {typeof globalThis.fetch} [fetch]
 * @property {() => number} [now] clock in milliseconds (tests pass a fake one)
 * @property {(ms: number) => Promise<void>} [sleep]
 *
 * @typedef {object} ProviderOptions
 * @property {string} [key] object key or listing prefix the credentials are for
 * @property {Access} [access] "write" refuses (ReadOnlyError) where only read is granted
 * @property {string} [project] use the answer narrowed to this project (?project=)
 *
 * @typedef {object} AwsCredentials
 * @property {string} accessKeyId
 * @property {string} secretAccessKey
 * @property {string} sessionToken
 * @property {Date} expiration
 *
 * @typedef {(() => Promise<AwsCredentials>) & {memoized: boolean}} CredentialProvider
 *
 * @typedef {{answer: Answer, fetchedAt: number, staleAt: number}} Entry
 */

const MINUTE = 60_000;
// Credentials this close to their expiry are never handed out from a stale answer.
const STALE_FLOOR_MS = MINUTE;

/**
 * Parses Retry-After (seconds or an HTTP date) into milliseconds.
 * @param {string | null} value
 * @param {number} now
 * @returns {number | undefined}
 */
export function retryAfterMs(value, now) {
  if (value == null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date starts with the day's name ("Sun, 06 Nov 1994 08:49:37 GMT").
  const at = /^[A-Za-z]{3}/.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Reads `{"error": code, "message": text}`; API Gateway's own refusals have
 * only a message, and a 401 may carry its code in WWW-Authenticate.
 * @param {Response} res
 * @returns {Promise<{code: string, message: string}>}
 */
async function readError(res) {
  let code = '';
  let message = '';
  try {
    const body = await res.json();
    if (body && typeof body === 'object') {
      if (typeof body.error === 'string') code = body.error;
      if (typeof body.message === 'string') message = body.message;
    }
  } catch {
    // not JSON: the status says enough
  }
  if (!code) {
    const m = /error="([^"]*)"/.exec(res.headers.get('WWW-Authenticate') ?? '');
    code = m ? m[1] : `http_${res.status}`;
  }
  return { code, message: message || res.statusText || `HTTP ${res.status}` };
}

export class CredentialBroker {
  /** @type {Map<string, Entry>} */
  #entries = new Map();
  /** @type {Map<string, {promise: Promise<Entry>, gen: number}>} */
  #inflight = new Map();
  /** bumped by invalidate(): answers fetched before it are not kept */
  #gen = 0;
  /** the generation of the last invalidate({noCache: true}) */
  #noCacheGen = 0;
  /** @type {Map<string, number>} per cache key, the generation its last no-cache fetch started in */
  #noCacheDone = new Map();
  /** @type {string | undefined} */
  #version;
  #versionSeq = 0;
  #seq = 0;

  /** @param {BrokerOptions} options */
  constructor(options) {
    if (!options || typeof options.apiUrl !== 'string' || options.apiUrl === '') {
      throw new TypeError('CredentialBroker needs apiUrl');
    }
    if (!options.tokens) throw new TypeError('CredentialBroker needs a token source');
    this.apiUrl = options.apiUrl.replace(/\/+$/, '');
    this.tokens = options.tokens;
    this.refreshMarginMs = options.refreshMarginMs ?? 5 * MINUTE;
    this.minFreshMs = options.minFreshMs ?? 10_000;
    this.recheckAfterMs = options.recheckAfterMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 2;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 20_000;
    this.onPolicyChange = options.onPolicyChange;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * Increases whenever cached answers are dropped (invalidate, AccessDenied).
   * @returns {number}
   */
  get generation() {
    return this.#gen;
  }

  /**
   * The user's answer (all grants, or one project's), from the cache while it
   * is fresh.
   * @param {{project?: string}} [opts]
   * @returns {Promise<Answer>}
   */
  async resources(opts = {}) {
    return (await this.#entry(opts.project ?? '')).answer;
  }

  /**
   * Every grant with the index of the credential set holding it.
   * @param {{project?: string}} [opts]
   */
  async grants(opts = {}) {
    return grantsOf(await this.resources(opts));
  }

  /**
   * Drops every cached answer. With noCache, the next fetch of each answer
   * asks the endpoint for freshly minted credentials (Cache-Control:
   * no-cache) instead of ones it may hold: after a revocation, what it holds
   * no longer works.
   * @param {{noCache?: boolean}} [opts]
   */
  invalidate(opts = {}) {
    this.#gen += 1;
    if (opts.noCache) this.#noCacheGen = this.#gen;
    this.#entries.clear();
  }

  /**
   * S3 refused a request that was signed with credentials from an answer of
   * generation `gen`. Drops the cache (asking for fresh credentials next)
   * unless that already happened since: many requests failing together cause
   * one refetch.
   * @param {number} gen
   */
  accessDenied(gen) {
    if (gen === this.#gen) this.invalidate({ noCache: true });
  }

  /**
   * A credential provider for the AWS SDK for JavaScript v3 (the `credentials`
   * of an S3Client) for one bucket, or one key or listing prefix in it. Each
   * call routes to the credential set whose grants cover the place, so it
   * follows grant changes and set splits. It is marked memoized: the SDK then
   * asks it on every request instead of keeping credentials itself, and this
   * module's cache is the only one.
   *
   * @param {string} bucket
   * @param {ProviderOptions} [opts]
   * @returns {CredentialProvider}
   */
  credentialsFor(bucket, opts = {}) {
    if (typeof bucket !== 'string' || bucket === '') throw new TypeError('credentialsFor needs a bucket name');
    const { key, access, project = '' } = opts;
    const provider = async () => {
      const { set } = await this.route(bucket, { key, access, project });
      return {
        accessKeyId: set.accessKeyId,
        secretAccessKey: set.secretAccessKey,
        sessionToken: set.sessionToken,
        expiration: set.expiration,
      };
    };
    return Object.assign(provider, { memoized: true });
  }

  /**
   * The credential set and grant for a place, as credentialsFor's providers
   * pick them. A place missing from an answer fetched more than
   * recheckAfterMs ago is looked up once more before NoAccessError, so a grant
   * added meanwhile is found.
   * @param {string} bucket
   * @param {ProviderOptions} [opts]
   */
  async route(bucket, opts = {}) {
    const { key, access, project = '' } = opts;
    let entry = await this.#entryNaming(project, bucket, key);
    try {
      return route(entry.answer, bucket, { key, access });
    } catch (err) {
      if (!(err instanceof NoAccessError) || this.now() - entry.fetchedAt < this.recheckAfterMs) throw err;
    }
    this.#entries.delete(project);
    entry = await this.#entryNaming(project, bucket, key);
    return route(entry.answer, bucket, { key, access });
  }

  /**
   * A plugin for an S3Client (`client.middlewareStack.use(...)`): when S3
   * answers AccessDenied, it drops the cached answers (the next fetch asks for
   * fresh credentials) and sends the command once more, so a revoked or
   * narrowed session is replaced at once. If the grant is gone, the retry
   * fails with NoAccessError from the provider; if S3 refuses again, its
   * error is thrown. Commands with a stream body are not sent twice.
   */
  s3Plugin() {
    return {
      /** @param {{add: (mw: any, opts: any) => void}} stack */
      applyToStack: (stack) => {
        stack.add(
          /** @param {(args: any) => Promise<any>} next */
          (next) => async (/** @type {any} */ args) => {
            const gen = this.#gen;
            try {
              return await next(args);
            } catch (err) {
              if (!isAccessDenied(err) || !replayable(args?.input?.Body)) throw err;
              this.accessDenied(gen);
              return next(args);
            }
          },
          { step: 'initialize', name: 'credbrokerAccessDenied', override: true },
        );
      },
    };
  }

  /**
   * @param {string} project
   * @param {string} bucket
   * @param {string | undefined} key
   */
  async #entryNaming(project, bucket, key) {
    try {
      return await this.#entry(project);
    } catch (err) {
      if (err instanceof NoAccessError && err.bucket === undefined) {
        const where = key === undefined ? `bucket "${bucket}"` : `"${bucket}/${key}"`;
        throw new NoAccessError(`You have no access to ${where}: ${err.message}`, {
          bucket,
          key,
          project: project || undefined,
          status: err.status,
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * @param {string} project
   * @returns {Promise<Entry>}
   */
  async #entry(project) {
    const e = this.#entries.get(project);
    if (e && this.now() < e.staleAt) return e;
    try {
      return await this.#load(project);
    } catch (err) {
      // The endpoint being down is no reason to drop credentials that still
      // work for a while: inside the refresh margin, keep serving them.
      const kept = e !== undefined && this.#entries.get(project) === e;
      if (err instanceof UnavailableError && kept && this.now() < e.answer.expiration.getTime() - STALE_FLOOR_MS)
        return e;
      throw err;
    }
  }

  /**
   * @param {string} project
   * @returns {Promise<Entry>}
   */
  #load(project) {
    const running = this.#inflight.get(project);
    if (running && running.gen === this.#gen) return running.promise;
    const gen = this.#gen;
    const seq = ++this.#seq;
    const noCache = this.#noCacheGen > (this.#noCacheDone.get(project) ?? 0);
    const promise = this.#fetchAnswer(project, noCache).then((answer) => {
      const fetchedAt = this.now();
      const expires = answer.expiration.getTime();
      // At a grant's end AWS starts refusing it and only a new answer says
      // so; an end already past (the endpoint's clock ahead) is left alone.
      const grantEnd = firstGrantEnd(answer, fetchedAt);
      const staleAt = Math.min(Math.max(expires - this.refreshMarginMs, fetchedAt + this.minFreshMs), grantEnd);
      /** @type {Entry} */
      const entry = { answer, fetchedAt, staleAt };
      if (noCache) this.#noCacheDone.set(project, gen);
      if (gen === this.#gen) this.#keep(project, entry, seq);
      return entry;
    });
    const flight = { promise, gen };
    this.#inflight.set(project, flight);
    const done = () => {
      if (this.#inflight.get(project) === flight) this.#inflight.delete(project);
    };
    promise.then(done, done);
    return promise;
  }

  /**
   * Caches an answer. A new policyVersion means every other cached answer
   * (other projects) describes old grants: they are dropped. An answer from a
   * request older than the one that brought the current version, and
   * disagreeing with it, is not kept.
   * @param {string} project
   * @param {Entry} entry
   * @param {number} seq
   */
  #keep(project, entry, seq) {
    const version = entry.answer.policyVersion;
    const previous = this.#version;
    if (previous !== undefined && version !== previous) {
      if (seq < this.#versionSeq) return;
      for (const k of [...this.#entries.keys()]) if (k !== project) this.#entries.delete(k);
      this.#version = version;
      this.#versionSeq = seq;
      this.#entries.set(project, entry);
      try {
        this.onPolicyChange?.({ previous, current: entry.answer });
      } catch {
        // a listener's failure is not the fetch's
      }
      return;
    }
    this.#version = version;
    this.#versionSeq = Math.max(this.#versionSeq, seq);
    this.#entries.set(project, entry);
  }

  /**
   * @param {boolean} forceRefresh
   * @returns {Promise<string>}
   */
  async #token(forceRefresh) {
    let token;
    try {
      token =
        typeof this.tokens === 'function'
          ? await this.tokens({ forceRefresh })
          : await this.tokens.getAccessToken({ forceRefresh });
    } catch (err) {
      if (err instanceof CredbrokerError) throw err;
      throw new AuthError('Could not get an access token: sign in again.', { code: 'no_token', cause: err });
    }
    if (typeof token !== 'string' || token === '') {
      throw new AuthError('Not signed in: there is no access token.', { code: 'no_token' });
    }
    return token;
  }

  /**
   * One answer from the endpoint: 401 → a new token and one more try; 503
   * and 429 → wait Retry-After, at most maxRetries times; 403 no_access →
   * NoAccessError; anything else → EndpointError with the server's code.
   * @param {string} project
   * @param {boolean} noCache
   * @returns {Promise<Answer>}
   */
  async #fetchAnswer(project, noCache) {
    const url = `${this.apiUrl}/auths/resources${project ? `?project=${encodeURIComponent(project)}` : ''}`;
    let refreshed = false;
    let retries = 0;
    for (;;) {
      const token = await this.#token(refreshed);
      /** @type {Record<string, string>} */
      const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
      if (noCache) headers['Cache-Control'] = 'no-cache';
      let res;
      try {
        // Default cache mode on purpose: "no-store" or "reload" would make
        // the browser add Cache-Control: no-cache to every request, and the
        // endpoint would mint fresh credentials each time.
        res = await this.fetch(url, { method: 'GET', headers, credentials: 'omit' });
      } catch (err) {
        throw new UnavailableError(
          'The credential endpoint could not be reached (network error, or the page is not allowed to call it).',
          { code: 'network', cause: err },
        );
      }
      if (res.ok) {
        let body;
        try {
          body = await res.json();
        } catch (err) {
          throw new EndpointError('The credential endpoint sent an answer that is not JSON.', {
            code: 'bad_answer',
            status: res.status,
            cause: err,
          });
        }
        return parseAnswer(body);
      }
      const { code, message } = await readError(res);
      const status = res.status;
      if (status === 401) {
        if (!refreshed) {
          refreshed = true;
          continue;
        }
        throw new AuthError(`The credential endpoint did not accept the sign-in: ${message}. Sign in again.`, {
          code,
          status,
        });
      }
      if (status === 403 && code === 'no_access') {
        throw new NoAccessError(
          project
            ? `you are not a member of project "${project}", or it grants nothing (${message}).`
            : `none of your projects grants you any bucket (${message}).`,
          { status, project: project || undefined },
        );
      }
      if (status === 503 || status === 429) {
        const wait = retryAfterMs(res.headers.get('Retry-After'), this.now()) ?? 1000 * 2 ** retries;
        if (retries >= this.maxRetries || wait > this.maxRetryAfterMs) {
          throw new UnavailableError(
            `The credential endpoint is unavailable (${message}); try again in ${Math.ceil(wait / 1000)} s.`,
            { code, status, retryAfterMs: wait },
          );
        }
        retries += 1;
        await this.sleep(wait);
        continue;
      }
      throw new EndpointError(`The credential endpoint refused the request: ${message} (${code}, HTTP ${status}).`, {
        code,
        status,
      });
    }
  }
}

/**
 * S3's refusal: AccessDenied, or a bare 403 without an error code (a HEAD
 * request has no body to carry one). Other 403 codes (a bad signature, a
 * skewed clock) are not about grants and cause no refetch.
 * @param {any} err
 */
export function isAccessDenied(err) {
  if (!err || typeof err !== 'object') return false;
  if (err.name === 'AccessDenied' || err.Code === 'AccessDenied') return true;
  return err.$metadata?.httpStatusCode === 403 && err.Code === undefined;
}

/**
 * A body that can be sent twice (a stream cannot).
 * @param {unknown} body
 */
function replayable(body) {
  if (body == null || typeof body === 'string') return true;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return true;
  return typeof Blob !== 'undefined' && body instanceof Blob;
}

/**
 * The earliest end of a grant of answer after now, or Infinity.
 * @param {Answer} answer
 * @param {number} now
 */
function firstGrantEnd(answer, now) {
  let end = Infinity;
  for (const set of answer.credentialSets) {
    for (const g of set.grants) {
      const t = g.expiresAt?.getTime();
      if (t !== undefined && t > now && t < end) end = t;
    }
  }
  return end;
}
