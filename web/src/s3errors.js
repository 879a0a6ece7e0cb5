// Plain words for what S3 answered, or why it did not, for pages and scripts
// that send S3 requests with this module's credentials: each message says what
// happened and what to do next, instead of the SDK's "Failed to fetch" or an
// exception's stack.

import { isAccessDenied } from './broker.js';

/**
 * @typedef {'no_such_bucket' | 'access_denied' | 'unreachable' | 'error'} S3ProblemCode
 *
 * @typedef {object} S3Problem
 * @property {S3ProblemCode} code
 * @property {string} message for people: what happened, and the next step
 *
 * @typedef {object} S3Place
 * @property {string} bucket
 * @property {string} [key]       the object key, or the listing's prefix
 * @property {'list' | 'read' | 'upload'} [action] default 'list'
 * @property {string} [endpoint]  the S3 endpoint the client sends to, when not AWS's (the local stack's moto)
 * @property {string[]} [projects] the projects whose grant covers the place
 * @property {string} [origin]    the page's origin, when a browser sent the request
 */

/** Node's codes for a request that got no answer. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * Whether S3 never answered: fetch's TypeError in a browser (a network
 * failure or a refused CORS preflight look the same to a page), a socket
 * error in Node, or the SDK's own timeout.
 * @param {any} err
 */
function unanswered(err) {
  if (err?.$metadata?.httpStatusCode) return false;
  if (err?.name === 'TypeError' || err?.name === 'TimeoutError') return true;
  const codes = [err?.code, err?.cause?.code, ...(err?.errors ?? []).map((/** @type {any} */ e) => e?.code)];
  return codes.some((c) => NETWORK_CODES.has(c));
}

/** @param {string | undefined} endpoint */
function local(endpoint) {
  if (!endpoint) return false;
  try {
    const host = new URL(endpoint).hostname;
    return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
  } catch {
    return false;
  }
}

/**
 * What an S3 request's failure means, in words that name the next step.
 * @param {unknown} err what an S3 client's `send` threw
 * @param {S3Place} where the place the request was for
 * @returns {S3Problem}
 */
export function explainS3Error(err, where) {
  const e = /** @type {any} */ (err);
  const place = `s3://${where.bucket}/${where.key ?? ''}`;
  const verb = { list: 'list', read: 'read', upload: 'store' }[where.action ?? 'list'];
  const at = where.endpoint ? ` at ${where.endpoint}` : '';
  const cli = where.endpoint ? `aws --endpoint-url ${where.endpoint} s3` : 'aws s3';
  const onLocal = local(where.endpoint);
  const projects = where.projects ?? [];

  if (e?.name === 'NoSuchBucket' || e?.Code === 'NoSuchBucket') {
    const granted =
      projects.length === 0
        ? 'your access names it'
        : `project${projects.length > 1 ? 's' : ''} ${projects.join(', ')} grant${projects.length > 1 ? '' : 's'} it`;
    const project = projects[0] ?? '<project>';
    return {
      code: 'no_such_bucket',
      message:
        `Bucket "${where.bucket}" does not exist${at}, though ${granted}. ` +
        `An administrator can create it (\`${cli} mb s3://${where.bucket}\`) or take it from the project ` +
        `(\`credbroker admin bucket delete${onLocal ? ' --stack .local/stack.json' : ''} --project ${project} --bucket ${where.bucket}\`).` +
        (onLocal ? ' On the local stack, `SEED=1 make run` creates every bucket the examples use.' : ''),
    };
  }
  if (isAccessDenied(err)) {
    return {
      code: 'access_denied',
      message:
        `S3 refused to ${verb} ${place}: these credentials do not allow it, perhaps because your access ` +
        'changed a moment ago. Fetch your access again to see what you may do now.',
    };
  }
  if (unanswered(err)) {
    const detail = e?.code ?? e?.cause?.code ?? e?.message ?? String(err);
    if (where.origin) {
      // A browser cannot tell these apart: each ends in "Failed to fetch".
      return {
        code: 'unreachable',
        message:
          `S3${at} gave this page no answer it may read for ${place} (${detail}). Either S3 cannot be reached, ` +
          `or bucket "${where.bucket}" does not exist, or it has no CORS rule for this page's origin ` +
          `(${where.origin}). Check that the bucket exists (\`${cli} ls s3://${where.bucket}\`) and has the ` +
          'CORS rule of web/README.md ("Demo page").' +
          (onLocal ? ' On the local stack, `SEED=1 make run` creates every demo bucket with that rule.' : ''),
      };
    }
    return {
      code: 'unreachable',
      message:
        `S3${at} could not be reached to ${verb} ${place} (${detail}). ` +
        (onLocal
          ? 'Is the local stack running? Start it with `SEED=1 make run`, and use the awsEndpoint of its stack file.'
          : 'Check the network and the S3 endpoint, then try again.'),
    };
  }
  const code = e?.Code ?? e?.name ?? 'Error';
  const status = e?.$metadata?.httpStatusCode;
  return {
    code: 'error',
    message: `S3 could not ${verb} ${place}: ${code}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`,
  };
}
