// CredentialBroker against a fake credential endpoint with a fake clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CredentialBroker, retryAfterMs } from '../src/broker.js';
import { AuthError, EndpointError, NoAccessError, RoutingError, SignInError, UnavailableError } from '../src/errors.js';
import { FakeClock, MINUTE, answer, errorReply, fakeTokens, startServer } from './fakes.js';

/**
 * A broker on a fake endpoint whose replies come from `handler`.
 * @param {import('node:test').TestContext} t
 * @param {(req: import('./fakes.js').Recorded, n: number) => any} handler
 * @param {Partial<import('../src/broker.js').BrokerOptions>} [opts]
 */
async function setup(t, handler, opts = {}) {
  const clock = new FakeClock();
  const endpoint = await startServer(handler);
  t.after(() => endpoint.close());
  const tokens = fakeTokens();
  const broker = new CredentialBroker({
    apiUrl: `${endpoint.url}/`,
    tokens,
    now: clock.now,
    sleep: clock.sleep,
    ...opts,
  });
  return { clock, endpoint, tokens, broker };
}

/** Answers the given replies in turn, repeating the last one. */
const sequence =
  (/** @type {any[]} */ ...replies) =>
  (/** @type {any} */ _req, /** @type {number} */ n) =>
    replies[Math.min(n, replies.length) - 1];

const T0 = Date.parse('2026-03-01T12:00:00Z');

// Three credential sets: the grants did not fit one session policy.
const threeSets = (version = 'v1', expiresAt = T0 + 15 * MINUTE) =>
  answer({
    version,
    sets: [
      { name: 'S0', expiresAt, grants: [{ bucket: 'alpha' }, { bucket: 'beta', access: 'write' }] },
      { name: 'S1', expiresAt: expiresAt + 5 * MINUTE, grants: [{ bucket: 'gamma', prefix: 'raw/', access: 'write' }] },
      {
        name: 'S2',
        expiresAt: expiresAt + 10 * MINUTE,
        grants: [{ bucket: 'gamma', prefix: 'curated/' }, { bucket: 'delta' }],
      },
    ],
  });

test('providers route over three credential sets from one fetch', async (t) => {
  const { broker, endpoint } = await setup(t, () => ({ json: threeSets() }));
  const alpha = broker.credentialsFor('alpha');
  const raw = broker.credentialsFor('gamma', { key: 'raw/2026/a.csv', access: 'write' });
  const curated = broker.credentialsFor('gamma', { key: 'curated/' });
  const delta = broker.credentialsFor('delta');

  assert.equal(alpha.memoized, true, 'marked memoized so the SDK asks on every request');
  assert.deepEqual(await alpha(), {
    accessKeyId: 'AKIAS0',
    secretAccessKey: 'secret-S0',
    sessionToken: 'token-S0',
    expiration: new Date(T0 + 15 * MINUTE),
  });
  assert.equal((await raw()).accessKeyId, 'AKIAS1');
  assert.deepEqual((await raw()).expiration, new Date(T0 + 20 * MINUTE), "the set's own expiry");
  assert.equal((await curated()).accessKeyId, 'AKIAS2');
  assert.equal((await delta()).accessKeyId, 'AKIAS2');
  await assert.rejects(broker.credentialsFor('gamma')(), RoutingError);
  await assert.rejects(broker.credentialsFor('gamma', { key: 'other/x' })(), NoAccessError);

  assert.equal(endpoint.requests.length, 1);
  const [req] = endpoint.requests;
  assert.equal(req.method, 'GET');
  assert.equal(req.url, '/auths/resources');
  assert.equal(req.headers.authorization, 'Bearer token-1');
  assert.equal(req.headers['cache-control'], undefined, 'an ordinary fetch does not bypass the server cache');
});

test('concurrent provider calls share one request', async (t) => {
  let release = () => {};
  const gate = new Promise((resolve) => (release = () => resolve(undefined)));
  const { broker, endpoint } = await setup(t, async () => {
    await gate;
    return { json: threeSets() };
  });
  const calls = Array.from({ length: 20 }, (_, i) => broker.credentialsFor(i % 2 ? 'alpha' : 'delta')());
  await new Promise((r) => setTimeout(r, 20));
  release();
  const got = await Promise.all(calls);
  assert.equal(endpoint.requests.length, 1);
  assert.deepEqual(new Set(got.map((c) => c.accessKeyId)), new Set(['AKIAS0', 'AKIAS2']));
});

test('the answer is kept until 5 minutes before its earliest expiry, then fetched again', async (t) => {
  const { broker, endpoint, clock } = await setup(t, () => ({ json: threeSets('v1', clock.now() + 15 * MINUTE) }));
  const delta = broker.credentialsFor('delta');
  await delta();
  clock.advance(10 * MINUTE - 1);
  await delta();
  assert.equal(endpoint.requests.length, 1, 'still fresh 1 ms before the margin');
  clock.advance(1);
  const again = await delta();
  assert.equal(endpoint.requests.length, 2, 'fetched again at the margin');
  assert.deepEqual(again.expiration, new Date(T0 + 10 * MINUTE + 25 * MINUTE), 'the new answer is used');
});

test("an answer is fetched again at a grant's end, when that comes before the margin", async (t) => {
  const { broker, endpoint, clock } = await setup(t, () => ({
    json: answer({
      sets: [
        {
          name: 'A',
          expiresAt: clock.now() + 60 * MINUTE,
          grants: [{ bucket: 'visiting', expiresAt: T0 + 20 * MINUTE }, { bucket: 'raw' }],
        },
      ],
    }),
  }));
  const raw = broker.credentialsFor('raw');
  await raw();
  clock.advance(20 * MINUTE - 1);
  await raw();
  assert.equal(endpoint.requests.length, 1, 'still fresh 1 ms before the grant ends');
  clock.advance(1);
  await raw();
  assert.equal(endpoint.requests.length, 2, "fetched again at the grant's end");
});

test('an answer that arrives inside the margin is kept 10 s, not fetched on every call', async (t) => {
  const { broker, endpoint, clock } = await setup(t, () => ({ json: threeSets('v1', clock.now() + 2 * MINUTE) }));
  const alpha = broker.credentialsFor('alpha');
  await alpha();
  clock.advance(9_999);
  await alpha();
  assert.equal(endpoint.requests.length, 1);
  clock.advance(1);
  await alpha();
  assert.equal(endpoint.requests.length, 2);
});

test('a new policyVersion drops the other cached answers and is reported', async (t) => {
  let all = threeSets('v1');
  let project = answer({
    version: 'v1',
    sets: [{ name: 'P0', expiresAt: T0 + 30 * MINUTE, grants: [{ bucket: 'delta', projects: ['p2'] }] }],
  });
  const { broker, endpoint, clock } = await setup(
    t,
    (req) => ({ json: req.url.includes('project=p2') ? project : all }),
    { onPolicyChange: (c) => changes.push({ previous: c.previous, current: c.current.policyVersion }) },
  );
  /** @type {Array<{previous: string, current: string}>} */
  const changes = [];

  await broker.resources();
  assert.equal((await broker.resources({ project: 'p2' })).policyVersion, 'v1');
  assert.equal(endpoint.requests.length, 2);
  assert.equal(endpoint.requests[1].url, '/auths/resources?project=p2');

  // Same version on refetch: the project answer stays cached.
  clock.advance(11 * MINUTE);
  all = threeSets('v1', clock.now() + 15 * MINUTE);
  await broker.resources();
  await broker.resources({ project: 'p2' });
  assert.equal(endpoint.requests.length, 3);
  assert.deepEqual(changes, []);

  // New version: alpha moved to another set; the project answer, though
  // fresh by its expiry, describes old grants and is fetched again.
  clock.advance(11 * MINUTE);
  all = answer({
    version: 'v2',
    sets: [{ name: 'S9', expiresAt: clock.now() + 15 * MINUTE, grants: [{ bucket: 'alpha' }] }],
  });
  project = answer({
    version: 'v2',
    sets: [{ name: 'P9', expiresAt: clock.now() + 30 * MINUTE, grants: [{ bucket: 'delta', projects: ['p2'] }] }],
  });
  assert.equal((await broker.credentialsFor('alpha')()).accessKeyId, 'AKIAS9');
  assert.deepEqual(changes, [{ previous: 'v1', current: 'v2' }]);
  assert.equal((await broker.credentialsFor('delta', { project: 'p2' })()).accessKeyId, 'AKIAP9');
  assert.equal(endpoint.requests.length, 5);
});

test('an older request that answers late with an older version does not undo the newer one', async (t) => {
  let releaseProject = () => {};
  const projectGate = new Promise((resolve) => (releaseProject = () => resolve(undefined)));
  const { broker, endpoint } = await setup(t, async (req, n) => {
    if (n === 1) {
      await projectGate;
      return {
        json: answer({
          version: 'v1',
          sets: [{ name: 'OLD', expiresAt: T0 + 30 * MINUTE, grants: [{ bucket: 'delta' }] }],
        }),
      };
    }
    if (req.url.includes('project=')) {
      return {
        json: answer({
          version: 'v2',
          sets: [{ name: 'NEW', expiresAt: T0 + 30 * MINUTE, grants: [{ bucket: 'delta' }] }],
        }),
      };
    }
    return { json: threeSets('v2') };
  });
  const late = broker.resources({ project: 'p2' });
  await new Promise((r) => setTimeout(r, 20));
  await broker.resources(); // started later, answers first: v2
  releaseProject();
  assert.equal((await late).policyVersion, 'v1', 'the caller still gets what it asked for');
  assert.equal((await broker.resources({ project: 'p2' })).policyVersion, 'v2');
  assert.equal(endpoint.requests.length, 3, 'but it was not cached: asked again');
  assert.equal((await broker.resources()).policyVersion, 'v2', 'and v2 is still cached');
  assert.equal(endpoint.requests.length, 3);
});

test('401: the token is refreshed once and the request sent once more', async (t) => {
  const { broker, endpoint, tokens } = await setup(
    t,
    sequence(
      errorReply('invalid_token', 'token expired', 401, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }),
      { json: threeSets() },
    ),
  );
  assert.equal((await broker.credentialsFor('alpha')()).accessKeyId, 'AKIAS0');
  assert.deepEqual(
    endpoint.requests.map((r) => r.headers.authorization),
    ['Bearer token-1', 'Bearer token-2'],
  );
  assert.deepEqual(tokens.calls, [{ forceRefresh: false }, { forceRefresh: true }]);
});

test('401 twice is an AuthError, after exactly one refresh', async (t) => {
  const { broker, endpoint, tokens } = await setup(t, () => errorReply('invalid_token', 'bad signature', 401));
  await assert.rejects(broker.credentialsFor('alpha')(), (err) => {
    assert.ok(err instanceof AuthError);
    assert.equal(err.code, 'invalid_token');
    assert.equal(err.status, 401);
    assert.match(err.message, /bad signature.*Sign in again/);
    return true;
  });
  assert.equal(endpoint.requests.length, 2);
  assert.equal(tokens.calls.filter((c) => c.forceRefresh).length, 1);
});

test("401 from the gateway's authorizer (no JSON error) is handled the same way", async (t) => {
  const { broker, endpoint } = await setup(t, () => ({
    status: 401,
    headers: { 'WWW-Authenticate': 'Bearer error="invalid_token", error_description="expired"' },
    json: { message: 'Unauthorized' },
  }));
  await assert.rejects(
    broker.resources(),
    (/** @type {any} */ err) => err instanceof AuthError && err.code === 'invalid_token',
  );
  assert.equal(endpoint.requests.length, 2);
});

test('403 no_access: a NoAccessError that names the bucket, without retry', async (t) => {
  const { broker, endpoint, tokens } = await setup(t, () => errorReply('no_access', 'no grants', 403));
  await assert.rejects(broker.credentialsFor('alpha', { key: 'a/b' })(), (err) => {
    assert.ok(err instanceof NoAccessError);
    assert.equal(err.bucket, 'alpha');
    assert.equal(err.key, 'a/b');
    assert.equal(err.status, 403);
    assert.match(err.message, /no access to "alpha\/a\/b": none of your projects grants you any bucket/);
    return true;
  });
  await assert.rejects(broker.credentialsFor('alpha', { project: 'p9' })(), (err) => {
    assert.ok(err instanceof NoAccessError);
    assert.equal(err.project, 'p9');
    assert.match(err.message, /bucket "alpha": you are not a member of project "p9"/);
    return true;
  });
  assert.deepEqual(
    endpoint.requests.map((r) => r.url),
    ['/auths/resources', '/auths/resources?project=p9'],
  );
  assert.equal(tokens.calls.filter((c) => c.forceRefresh).length, 0);
});

test('503 and 429: Retry-After is honoured, with bounded retries', async (t) => {
  const unavailable = (/** @type {Record<string, string>} */ headers) =>
    errorReply('unavailable', 'throttled', 503, headers);
  const cases = [
    {
      name: 'one 503 with Retry-After: 2, then success',
      replies: [unavailable({ 'Retry-After': '2' }), { json: threeSets() }],
      requests: 2,
      sleeps: [2000],
    },
    {
      name: 'no Retry-After: backoff 1 s, then 2 s',
      replies: [unavailable({}), unavailable({}), { json: threeSets() }],
      requests: 3,
      sleeps: [1000, 2000],
    },
    {
      name: 'Retry-After as an HTTP date',
      replies: [unavailable({ 'Retry-After': new Date(T0 + 3000).toUTCString() }), { json: threeSets() }],
      requests: 2,
      sleeps: [3000],
    },
    {
      name: '429 is retried like 503',
      replies: [
        { status: 429, headers: { 'Retry-After': '1' }, json: { message: 'Too Many Requests' } },
        { json: threeSets() },
      ],
      requests: 2,
      sleeps: [1000],
    },
    {
      name: 'always 503: gives up after two retries',
      replies: [unavailable({ 'Retry-After': '1' })],
      requests: 3,
      sleeps: [1000, 1000],
      error: { retryAfterMs: 1000, status: 503 },
    },
    {
      name: 'Retry-After longer than the module waits: fails at once',
      replies: [unavailable({ 'Retry-After': '120' })],
      requests: 1,
      sleeps: [],
      error: { retryAfterMs: 120_000, status: 503 },
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { broker, endpoint, clock } = await setup(t, sequence(...c.replies));
      const got = broker.credentialsFor('alpha')();
      if (c.error) {
        await assert.rejects(got, (err) => {
          assert.ok(err instanceof UnavailableError, String(err));
          assert.equal(err.retryAfterMs, c.error.retryAfterMs);
          assert.equal(err.status, c.error.status);
          assert.equal(err.code, 'unavailable');
          return true;
        });
      } else {
        assert.equal((await got).accessKeyId, 'AKIAS0');
      }
      assert.equal(endpoint.requests.length, c.requests);
      assert.deepEqual(clock.sleeps, c.sleeps);
    });
  }
});

test("other statuses: an EndpointError with the server's code, no retry", async (t) => {
  const cases = [
    {
      name: '400 bad_request',
      reply: errorReply('bad_request', 'unknown query parameter "x"', 400),
      code: 'bad_request',
      status: 400,
      text: /unknown query parameter/,
    },
    { name: '500 without JSON', reply: { status: 500, text: 'oops' }, code: 'http_500', status: 500, text: /HTTP 500/ },
    {
      name: '403 with another code',
      reply: errorReply('forbidden', 'no', 403),
      code: 'forbidden',
      status: 403,
      text: /no/,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { broker, endpoint } = await setup(t, () => c.reply);
      await assert.rejects(broker.resources(), (err) => {
        assert.ok(err instanceof EndpointError, String(err));
        assert.equal(err.code, c.code);
        assert.equal(err.status, c.status);
        assert.match(err.message, c.text);
        return true;
      });
      assert.equal(endpoint.requests.length, 1);
    });
  }
});

test('a malformed 200 answer is refused and not cached', async (t) => {
  const broken = threeSets();
  // @ts-expect-error breaking it on purpose
  delete broken.credentialSets[1].secretAccessKey;
  const { broker, endpoint } = await setup(
    t,
    sequence({ json: broken }, { text: 'not json', status: 200 }, { json: threeSets() }),
  );
  await assert.rejects(
    broker.resources(),
    (/** @type {any} */ err) => err instanceof EndpointError && err.code === 'bad_answer',
  );
  await assert.rejects(
    broker.resources(),
    (/** @type {any} */ err) => err instanceof EndpointError && err.code === 'bad_answer',
  );
  assert.equal((await broker.credentialsFor('alpha')()).accessKeyId, 'AKIAS0');
  assert.equal(endpoint.requests.length, 3);
});

test('after AccessDenied the next fetch of every answer sends Cache-Control: no-cache, once', async (t) => {
  const { broker, endpoint, clock } = await setup(t, () => ({ json: threeSets('v1', clock.now() + 15 * MINUTE) }));
  const alpha = broker.credentialsFor('alpha');
  await alpha();
  const gen = broker.generation;
  broker.accessDenied(gen);
  broker.accessDenied(gen); // a second request refused with the same credentials: no second refetch
  await alpha();
  await broker.resources({ project: 'p2' }); // the server caches per project too
  await alpha();
  clock.advance(11 * MINUTE);
  broker.accessDenied(gen); // refused with credentials older than the refetch: nothing more to do
  await alpha();
  await alpha(); // an ordinary refetch again
  assert.deepEqual(
    endpoint.requests.map((r) => [r.url, r.headers['cache-control']]),
    [
      ['/auths/resources', undefined],
      ['/auths/resources', 'no-cache'],
      ['/auths/resources?project=p2', 'no-cache'],
      ['/auths/resources', undefined],
    ],
  );
});

test('invalidate() without noCache refetches without the header', async (t) => {
  const { broker, endpoint } = await setup(t, () => ({ json: threeSets() }));
  await broker.resources();
  broker.invalidate();
  await broker.resources();
  assert.deepEqual(
    endpoint.requests.map((r) => r.headers['cache-control']),
    [undefined, undefined],
  );
});

test('an answer that arrives after invalidate() is returned but not cached', async (t) => {
  let release = () => {};
  const gate = new Promise((resolve) => (release = () => resolve(undefined)));
  const keyed = (/** @type {string} */ name) =>
    answer({ sets: [{ name, expiresAt: T0 + 15 * MINUTE, grants: [{ bucket: 'alpha' }] }] });
  const { broker, endpoint } = await setup(t, async (_req, n) => {
    if (n === 1) {
      await gate;
      return { json: keyed('OLD') };
    }
    return { json: keyed('NEW') };
  });
  const alpha = broker.credentialsFor('alpha');
  const first = alpha();
  await new Promise((r) => setTimeout(r, 20));
  broker.invalidate({ noCache: true });
  assert.equal((await alpha()).accessKeyId, 'AKIANEW', 'not joined to the invalidated request');
  release();
  assert.equal((await first).accessKeyId, 'AKIAOLD', 'the earlier caller gets its answer');
  assert.equal((await alpha()).accessKeyId, 'AKIANEW', 'which does not replace the newer one');
  assert.deepEqual(
    endpoint.requests.map((r) => r.headers['cache-control']),
    [undefined, 'no-cache'],
  );
});

test('while the endpoint is down, credentials inside the margin are still served until a minute before expiry', async (t) => {
  let down = false;
  const { broker, endpoint, clock } = await setup(t, () =>
    down
      ? errorReply('unavailable', 'down', 503, { 'Retry-After': '60' })
      : { json: threeSets('v1', clock.now() + 15 * MINUTE) },
  );
  const alpha = broker.credentialsFor('alpha');
  await alpha();
  down = true;
  clock.advance(11 * MINUTE);
  assert.equal((await alpha()).accessKeyId, 'AKIAS0', 'stale but valid for 4 more minutes');
  clock.advance(3 * MINUTE);
  await assert.rejects(alpha(), UnavailableError);
  assert.equal(endpoint.requests.length, 3);
});

test('a refusal during a refetch is not hidden by the stale answer', async (t) => {
  let revoked = false;
  const { broker, clock } = await setup(t, () =>
    revoked ? errorReply('no_access', 'no grants', 403) : { json: threeSets() },
  );
  const alpha = broker.credentialsFor('alpha');
  await alpha();
  revoked = true;
  clock.advance(11 * MINUTE);
  await assert.rejects(alpha(), NoAccessError);
});

test('a place missing from an answer older than 30 s is looked up once more', async (t) => {
  let current = threeSets('v1');
  const { broker, endpoint, clock } = await setup(t, () => ({ json: current }));
  const fresh = broker.credentialsFor('epsilon');
  await assert.rejects(fresh(), NoAccessError);
  assert.equal(endpoint.requests.length, 1, 'a fresh answer is trusted');
  current = answer({
    version: 'v2',
    sets: [{ name: 'S5', expiresAt: T0 + 15 * MINUTE, grants: [{ bucket: 'epsilon', access: 'write' }] }],
  });
  clock.advance(30_000);
  assert.equal((await broker.credentialsFor('epsilon', { access: 'write' })()).accessKeyId, 'AKIAS5');
  assert.equal(endpoint.requests.length, 2);
});

test('an unreachable endpoint is an UnavailableError with code network', async () => {
  const gone = await startServer(() => ({}));
  await gone.close();
  const broker = new CredentialBroker({ apiUrl: gone.url, tokens: fakeTokens() });
  await assert.rejects(
    broker.resources(),
    (/** @type {any} */ err) => err instanceof UnavailableError && err.code === 'network',
  );
});

test('token source failures: AuthError, and Cognito refusals pass through', async (t) => {
  const { endpoint } = await setup(t, () => ({ json: threeSets() }));
  const cases = [
    {
      name: 'throws a plain error',
      tokens: async () => Promise.reject(new Error('storage broken')),
      check: (/** @type {any} */ e) => e instanceof AuthError && e.code === 'no_token',
    },
    {
      name: 'returns nothing',
      tokens: async () => '',
      check: (/** @type {any} */ e) => e instanceof AuthError && e.code === 'no_token',
    },
    {
      name: 'refresh refused by Cognito',
      tokens: async () => Promise.reject(new SignInError('ended', { code: 'NotAuthorizedException' })),
      check: (/** @type {any} */ e) => e instanceof SignInError && e.code === 'NotAuthorizedException',
    },
  ];
  for (const c of cases) {
    const broker = new CredentialBroker({ apiUrl: endpoint.url, tokens: c.tokens });
    await assert.rejects(broker.resources(), c.check, c.name);
  }
  assert.equal(endpoint.requests.length, 0, 'no request without a token');
});

test('retryAfterMs reads seconds and HTTP dates', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  assert.equal(retryAfterMs('5', now), 5000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Sun, 01 Mar 2026 12:00:07 GMT', now), 7000);
  assert.equal(retryAfterMs('Sun, 01 Mar 2026 11:00:00 GMT', now), 0, 'a date in the past means now');
  assert.equal(retryAfterMs('soon', now), undefined);
  assert.equal(retryAfterMs(null, now), undefined);
  assert.equal(retryAfterMs('-3', now), undefined);
});
