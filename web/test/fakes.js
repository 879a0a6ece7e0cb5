// Hand-written fakes for the tests: a fake credential endpoint, a fake
// Cognito, a fake S3 (each a tiny node http server on 127.0.0.1), and a fake
// clock. They serve what the real services would for the paths under test.

import http from 'node:http';

/**
 * @typedef {object} Recorded
 * @property {string} method
 * @property {string} url
 * @property {http.IncomingHttpHeaders} headers
 * @property {string} body
 *
 * @typedef {object} Reply
 * @property {number} [status]
 * @property {Record<string, string>} [headers]
 * @property {unknown} [json]
 * @property {string} [text]
 */

/**
 * Starts a server whose handler decides every reply; records every request.
 * @param {(req: Recorded, n: number) => Reply | Promise<Reply>} handler
 */
export async function startServer(handler) {
  /** @type {Recorded[]} */
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const rec = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
    };
    requests.push(rec);
    let reply;
    try {
      reply = await handler(rec, requests.length);
    } catch (err) {
      reply = { status: 500, text: String(err) };
    }
    const headers = { ...(reply.headers ?? {}) };
    let payload = reply.text ?? '';
    if (reply.json !== undefined) {
      payload = JSON.stringify(reply.json);
      headers['Content-Type'] ??= 'application/json';
    }
    res.writeHead(reply.status ?? 200, headers);
    res.end(payload);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}

/** A clock that moves only when told; sleep() advances it and records the wait. */
export class FakeClock {
  /** @param {number} [start] */
  constructor(start = Date.parse('2026-03-01T12:00:00Z')) {
    this.t = start;
    /** @type {number[]} */
    this.sleeps = [];
    this.now = () => this.t;
    this.sleep = async (/** @type {number} */ ms) => {
      this.sleeps.push(ms);
      this.t += ms;
    };
  }

  /** @param {number} ms */
  advance(ms) {
    this.t += ms;
  }
}

export const MINUTE = 60_000;

/**
 * @typedef {{bucket: string, prefix?: string, access?: 'read' | 'write', projects?: string[], expiresAt?: number}} G
 */

/**
 * A 200 answer as the endpoint sends it. Each set gets key id `AKIA<name>`.
 * @param {{version?: string, userId?: string, sets: Array<{name: string, expiresAt: number, grants: G[]}>}} spec
 */
export function answer(spec) {
  const sets = spec.sets.map((s) => ({
    accessKeyId: `AKIA${s.name}`,
    secretAccessKey: `secret-${s.name}`,
    sessionToken: `token-${s.name}`,
    expiration: new Date(s.expiresAt).toISOString(),
    grants: s.grants.map((g) => ({
      bucket: g.bucket,
      prefix: g.prefix ?? '',
      access: g.access ?? 'read',
      projects: g.projects ?? ['p1'],
      ...(g.expiresAt === undefined ? {} : { expiresAt: new Date(g.expiresAt).toISOString() }),
    })),
  }));
  const earliest = Math.min(...spec.sets.map((s) => s.expiresAt));
  return {
    userId: spec.userId ?? 'user-1',
    policyVersion: spec.version ?? 'v1',
    expiration: new Date(earliest).toISOString(),
    credentialSets: sets,
  };
}

/**
 * @param {string} code
 * @param {string} message
 * @param {number} status
 * @param {Record<string, string>} [headers]
 * @returns {Reply}
 */
export const errorReply = (code, message, status, headers = {}) => ({
  status,
  headers,
  json: { error: code, message },
});

/** A token source that counts calls and hands out token-1, token-2, ... on forced refreshes. */
export function fakeTokens() {
  const calls = /** @type {Array<{forceRefresh?: boolean}>} */ ([]);
  let n = 1;
  return {
    calls,
    getAccessToken: async (/** @type {{forceRefresh?: boolean}} */ req = {}) => {
      calls.push(req);
      if (req.forceRefresh) n += 1;
      return `token-${n}`;
    },
  };
}
