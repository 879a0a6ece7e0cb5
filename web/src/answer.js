// The endpoint's answer (docs/contract.md "Credential endpoint"): parsing that fails
// closed, and routing a bucket (and key) to the one credential set whose
// grants cover it.

import { EndpointError, NoAccessError, ReadOnlyError, RoutingError } from './errors.js';

/**
 * @typedef {'read' | 'write'} Access
 *
 * @typedef {object} Grant
 * @property {string} bucket
 * @property {string} prefix    "" for the whole bucket, else a folder ending in "/"
 * @property {Access} access
 * @property {string[]} projects the projects the grant comes through
 * @property {Date} [expiresAt] when the grant ends, if every membership giving it is time-bounded
 *
 * @typedef {object} CredentialSet
 * @property {string} accessKeyId
 * @property {string} secretAccessKey
 * @property {string} sessionToken
 * @property {Date} expiration
 * @property {Grant[]} grants  exactly what these credentials reach
 *
 * @typedef {object} Answer
 * @property {string} userId
 * @property {string} policyVersion changes whenever the user's grants change
 * @property {Date} expiration      earliest expiry over all sets
 * @property {CredentialSet[]} credentialSets
 *
 * @typedef {object} Route
 * @property {CredentialSet} set
 * @property {number} setIndex
 * @property {Grant} grant the grant that covers the place asked for
 */

/** @param {string} what */
const bad = (what) =>
  new EndpointError(`The credential endpoint sent an answer this client cannot use (${what}).`, {
    code: 'bad_answer',
    status: 200,
  });

/**
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * @param {unknown} v
 * @returns {v is string}
 */
const isText = (v) => typeof v === 'string' && v.length > 0;

/**
 * @param {unknown} v
 * @param {string} what
 */
function date(v, what) {
  const d = typeof v === 'string' ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) throw bad(`${what} is not a time`);
  return d;
}

/**
 * A folder always ends in "/" ("raw/2024" and "raw/2024/" mean the same
 * folder); adding the slash can only narrow what a prefix matches.
 * @param {string} prefix
 */
export const folder = (prefix) => (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`);

/**
 * Checks a decoded 200 answer and returns it with times as Dates. Anything off
 * shape throws EndpointError `bad_answer`: no part of a malformed answer is
 * used.
 * @param {unknown} body
 * @returns {Answer}
 */
export function parseAnswer(body) {
  if (!isObject(body)) throw bad('not a JSON object');
  const { userId, policyVersion, credentialSets } = body;
  if (!isText(userId)) throw bad('no userId');
  if (!isText(policyVersion)) throw bad('no policyVersion');
  if (!Array.isArray(credentialSets)) throw bad('no credentialSets');
  let earliest = date(body.expiration, 'expiration');
  const sets = credentialSets.map((s, i) => {
    if (!isObject(s)) throw bad(`set ${i} is not an object`);
    for (const f of ['accessKeyId', 'secretAccessKey', 'sessionToken']) {
      if (!isText(s[f])) throw bad(`set ${i} has no ${f}`);
    }
    const expiration = date(s.expiration, `set ${i} expiration`);
    if (expiration < earliest) earliest = expiration;
    if (!Array.isArray(s.grants)) throw bad(`set ${i} has no grants`);
    const grants = s.grants.map((g, j) => {
      if (!isObject(g) || !isText(g.bucket) || typeof g.prefix !== 'string') throw bad(`grant ${j} of set ${i}`);
      if (g.access !== 'read' && g.access !== 'write')
        throw bad(`grant ${j} of set ${i} has access ${String(g.access)}`);
      const projects = Array.isArray(g.projects) ? g.projects.filter(isText) : [];
      /** @type {Grant} */
      const grant = { bucket: g.bucket, prefix: folder(g.prefix), access: g.access, projects };
      if (g.expiresAt !== undefined) grant.expiresAt = date(g.expiresAt, `grant ${j} of set ${i} expiresAt`);
      return grant;
    });
    return /** @type {CredentialSet} */ ({
      accessKeyId: /** @type {string} */ (s.accessKeyId),
      secretAccessKey: /** @type {string} */ (s.secretAccessKey),
      sessionToken: /** @type {string} */ (s.sessionToken),
      expiration,
      grants,
    });
  });
  return { userId, policyVersion, expiration: earliest, credentialSets: sets };
}

/**
 * Every grant of an answer with the index of the set that holds it.
 * @param {Answer} answer
 * @returns {Array<Grant & {setIndex: number}>}
 */
export const grantsOf = (answer) =>
  answer.credentialSets.flatMap((set, setIndex) => set.grants.map((g) => ({ ...g, setIndex })));

/** @param {Grant} g */
const place = (g) => `${g.bucket}/${g.prefix}`;

/** @param {string[]} projects */
const through = (projects) =>
  projects.length === 0 ? '' : ` (through project${projects.length > 1 ? 's' : ''} ${projects.join(', ')})`;

/**
 * Picks the credential set for a bucket, or for an object key or listing
 * prefix in it. A grant covers a key when the key starts with the grant's
 * folder (a whole-bucket grant covers every key). Of the covering grants, a
 * write grant wins over a read one (it allows reading too), then the most
 * specific folder, then the first set: the choice is deterministic.
 *
 * Without a key, a whole-bucket grant is taken when there is one; otherwise
 * the bucket's folders must all be in one set, since credentials for one
 * folder cannot reach another set's folders.
 *
 * @param {Answer} answer
 * @param {string} bucket
 * @param {{key?: string, access?: Access}} [want]
 * @returns {Route}
 */
export function route(answer, bucket, want = {}) {
  const { key, access } = want;
  const onBucket = grantsOf(answer).filter((g) => g.bucket === bucket);
  if (onBucket.length === 0) {
    throw new NoAccessError(`You have no access to bucket "${bucket}": none of your projects grants it.`, {
      bucket,
      key,
    });
  }
  let candidates;
  if (key === undefined) {
    const whole = onBucket.filter((g) => g.prefix === '');
    candidates = whole.length > 0 ? whole : onBucket;
    const sets = new Set(candidates.map((g) => g.setIndex));
    if (sets.size > 1) {
      throw new RoutingError(
        `Your grants on bucket "${bucket}" are split over ${sets.size} credential sets; ask for credentials for a key or folder of it.`,
        { bucket },
      );
    }
  } else {
    candidates = onBucket.filter((g) => key.startsWith(g.prefix));
    if (candidates.length === 0) {
      const folders = onBucket.map((g) => `"${g.prefix}"`).join(', ');
      throw new NoAccessError(
        `You have no access to "${bucket}/${key}": in that bucket your projects grant only the folder${onBucket.length > 1 ? 's' : ''} ${folders}.`,
        { bucket, key },
      );
    }
  }
  candidates.sort(
    (a, b) =>
      Number(b.access === 'write') - Number(a.access === 'write') ||
      b.prefix.length - a.prefix.length ||
      a.setIndex - b.setIndex,
  );
  const best = candidates[0];
  if (access === 'write' && best.access !== 'write') {
    const { setIndex: _, ...grant } = best;
    throw new ReadOnlyError(
      `You can read "${place(best)}" but not change it: your access there is read-only${through(best.projects)}. ` +
        'Uploading or deleting needs write access; a project owner can grant it.',
      { bucket, key, grant },
    );
  }
  const { setIndex, ...grant } = best;
  return { set: answer.credentialSets[setIndex], setIndex, grant };
}

/**
 * Says, for people, how long a time-bounded grant has left: "expires in 2 h",
 * "expires in 45 min", "expires in 3 d", "expires in under a minute" or
 * "expired". Rounded down, so it never promises more time than is left.
 * @param {Date} expiresAt
 * @param {Date} [now]
 */
export function expiresIn(expiresAt, now = new Date()) {
  const left = expiresAt.getTime() - now.getTime();
  if (left <= 0) return 'expired';
  const minutes = Math.floor(left / 60_000);
  if (minutes < 1) return 'expires in under a minute';
  if (minutes < 60) return `expires in ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `expires in ${hours} h`;
  return `expires in ${Math.floor(hours / 24)} d`;
}
