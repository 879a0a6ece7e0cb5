// Parsing the endpoint's answer and routing places to credential sets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expiresIn, parseAnswer, route } from '../src/answer.js';
import { EndpointError, NoAccessError, ReadOnlyError, RoutingError } from '../src/errors.js';
import { MINUTE, answer } from './fakes.js';

const T = Date.parse('2026-03-01T12:15:00Z');

// Three sets, as the endpoint answers when grants do not fit one session policy.
const threeSets = () =>
  parseAnswer(
    answer({
      sets: [
        {
          name: 'S0',
          expiresAt: T,
          grants: [{ bucket: 'alpha' }, { bucket: 'beta', access: 'write' }, { bucket: 'mixed' }],
        },
        {
          name: 'S1',
          expiresAt: T + MINUTE,
          grants: [
            { bucket: 'gamma', prefix: 'raw/', access: 'write' },
            { bucket: 'mixed', prefix: 'inbox/', access: 'write' },
          ],
        },
        {
          name: 'S2',
          expiresAt: T + 2 * MINUTE,
          grants: [
            { bucket: 'gamma', prefix: 'curated/', projects: ['p2', 'p3'] },
            { bucket: 'delta', projects: ['p2'] },
            { bucket: 'mixed', prefix: 'inbox/deep/', access: 'write' },
          ],
        },
      ],
    }),
  );

/** @param {import('../src/answer.js').Route} r */
const key = (r) => r.set.accessKeyId;

test('routing picks the one set whose grants cover the bucket or key', () => {
  const a = threeSets();
  const cases = [
    { name: 'whole bucket in set 0', bucket: 'alpha', want: {}, set: 'AKIAS0' },
    { name: 'writable bucket for a write', bucket: 'beta', want: { key: 'x/y', access: 'write' }, set: 'AKIAS0' },
    { name: 'folder in set 1', bucket: 'gamma', want: { key: 'raw/2026/a.csv' }, set: 'AKIAS1' },
    { name: 'sibling folder in set 2', bucket: 'gamma', want: { key: 'curated/b.csv' }, set: 'AKIAS2' },
    { name: 'listing prefix equal to the folder', bucket: 'gamma', want: { key: 'curated/' }, set: 'AKIAS2' },
    {
      name: 'whole-bucket read elsewhere, folder write wins inside it',
      bucket: 'mixed',
      want: { key: 'inbox/x' },
      set: 'AKIAS1',
    },
    {
      name: 'deeper write folder wins over shallower write folder',
      bucket: 'mixed',
      want: { key: 'inbox/deep/x' },
      set: 'AKIAS2',
    },
    {
      name: 'outside the folders the whole-bucket read covers',
      bucket: 'mixed',
      want: { key: 'other/x' },
      set: 'AKIAS0',
    },
    { name: 'no key prefers the whole-bucket grant', bucket: 'mixed', want: {}, set: 'AKIAS0' },
  ];
  for (const c of cases) assert.equal(key(route(a, c.bucket, c.want)), c.set, c.name);
  assert.deepEqual(route(a, 'gamma', { key: 'curated/b' }).grant, {
    bucket: 'gamma',
    prefix: 'curated/',
    access: 'read',
    projects: ['p2', 'p3'],
  });
});

test('routing refuses with an error that names the place', () => {
  const a = threeSets();
  const cases = [
    { name: 'bucket not granted', bucket: 'omega', want: {}, type: NoAccessError, text: /bucket "omega"/ },
    {
      name: 'key outside every folder',
      bucket: 'gamma',
      want: { key: 'rawdata/x' },
      type: NoAccessError,
      text: /"gamma\/rawdata\/x".*"raw\/", "curated\/"/,
    },
    {
      name: 'folder without its slash is not the folder',
      bucket: 'gamma',
      want: { key: 'raw' },
      type: NoAccessError,
      text: /gamma\/raw/,
    },
    {
      name: 'write on a read-only bucket',
      bucket: 'delta',
      want: { access: 'write' },
      type: ReadOnlyError,
      text: /read "delta\/".*read-only \(through project p2\)/,
    },
    {
      name: 'write on a read-only folder',
      bucket: 'gamma',
      want: { key: 'curated/new.csv', access: 'write' },
      type: ReadOnlyError,
      text: /projects p2, p3/,
    },
    {
      name: 'folders in several sets and no key',
      bucket: 'gamma',
      want: {},
      type: RoutingError,
      text: /split over 2 credential sets/,
    },
  ];
  for (const c of cases) {
    assert.throws(
      () => route(a, c.bucket, c.want),
      (/** @type {any} */ err) => {
        assert.ok(err instanceof c.type, `${c.name}: ${err}`);
        assert.match(err.message, c.text, c.name);
        assert.equal(err.bucket, c.bucket, c.name);
        return true;
      },
    );
  }
});

test('a read-only refusal carries the grant and code read_only', () => {
  assert.throws(
    () => route(threeSets(), 'delta', { key: 'a', access: 'write' }),
    (/** @type {any} */ err) =>
      err.code === 'read_only' && err.grant.bucket === 'delta' && err.grant.access === 'read' && err.key === 'a',
  );
});

test('parseAnswer keeps times as Dates, the earliest expiry, and folders ending in /', () => {
  const body = answer({ sets: [{ name: 'A', expiresAt: T + MINUTE, grants: [{ bucket: 'b', prefix: 'raw/2024' }] }] });
  body.expiration = new Date(T + 5 * MINUTE).toISOString(); // later than the set: the set wins
  const a = parseAnswer(body);
  assert.equal(a.expiration.getTime(), T + MINUTE);
  assert.ok(a.credentialSets[0].expiration instanceof Date);
  assert.equal(a.credentialSets[0].grants[0].prefix, 'raw/2024/');
});

test('parseAnswer refuses a malformed answer as a whole', () => {
  const good = () => answer({ sets: [{ name: 'A', expiresAt: T, grants: [{ bucket: 'b' }] }] });
  /** @type {Array<[string, (b: any) => void]>} */
  const breakages = [
    ['no policyVersion', (b) => delete b.policyVersion],
    ['no secret key', (b) => delete b.credentialSets[0].secretAccessKey],
    ['empty session token', (b) => (b.credentialSets[0].sessionToken = '')],
    ['bad expiry', (b) => (b.credentialSets[0].expiration = 'soon')],
    ['unknown access level', (b) => (b.credentialSets[0].grants[0].access = 'admin')],
    ['grant without bucket', (b) => delete b.credentialSets[0].grants[0].bucket],
    ['grant with an unreadable expiresAt', (b) => (b.credentialSets[0].grants[0].expiresAt = 'tomorrow')],
    ['sets not a list', (b) => (b.credentialSets = {})],
  ];
  assert.doesNotThrow(() => parseAnswer(good()));
  for (const [name, breakIt] of breakages) {
    const b = good();
    breakIt(b);
    assert.throws(
      () => parseAnswer(b),
      (/** @type {any} */ err) => err instanceof EndpointError && err.code === 'bad_answer',
      name,
    );
  }
  assert.throws(() => parseAnswer('nope'), EndpointError);
});

test("parseAnswer keeps a time-bounded grant's expiresAt as a Date, and none for the others", () => {
  const body = answer({ sets: [{ name: 'A', expiresAt: T, grants: [{ bucket: 'b' }, { bucket: 'c' }] }] });
  body.credentialSets[0].grants[0].expiresAt = new Date(T + 2 * 60 * MINUTE).toISOString();
  const [bounded, open] = parseAnswer(body).credentialSets[0].grants;
  assert.equal(bounded.expiresAt?.getTime(), T + 2 * 60 * MINUTE);
  assert.equal(open.expiresAt, undefined);
});

test('expiresIn says how long a grant has left, rounded down', () => {
  const now = new Date(T);
  /** @type {Array<[number, string]>} */
  const cases = [
    [2 * 60 * MINUTE, 'expires in 2 h'],
    [2 * 60 * MINUTE + 59 * MINUTE, 'expires in 2 h'],
    [45 * MINUTE, 'expires in 45 min'],
    [30 * 1000, 'expires in under a minute'],
    [3 * 24 * 60 * MINUTE, 'expires in 3 d'],
    [0, 'expired'],
    [-MINUTE, 'expired'],
  ];
  for (const [left, want] of cases) {
    assert.equal(expiresIn(new Date(T + left), now), want, `${left} ms left`);
  }
});
