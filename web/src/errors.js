// One error taxonomy for the browser client. Every error the module throws is a
// CredbrokerError; callers branch on the class (or on `code`), never on the
// message, which is written for people.

/**
 * @typedef {object} ErrorDetails
 * @property {string} [code]   machine-readable code: the endpoint's `error` field, a Cognito exception name, or one of the module's own
 * @property {number} [status] HTTP status of the answer that caused it, when there was one
 * @property {unknown} [cause]
 */

export class CredbrokerError extends Error {
  /**
   * @param {string} message
   * @param {ErrorDetails} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    /** @type {string} */
    this.code = details.code ?? 'error';
    /** @type {number | undefined} */
    this.status = details.status;
  }
}

/**
 * The user is not (or no longer) signed in: the endpoint refused the access
 * token even after one refresh, or the token source failed. Sign in again.
 */
export class AuthError extends CredbrokerError {}

/**
 * Cognito refused a sign-in or a token refresh. `code` is Cognito's exception
 * name (NotAuthorizedException, UserNotFoundException, ...), or
 * `ChallengeRequired` with `challengeName` set when Cognito asks for a step
 * this module does not perform (a new password, MFA).
 */
export class SignInError extends AuthError {
  /**
   * @param {string} message
   * @param {ErrorDetails & {challengeName?: string}} [details]
   */
  constructor(message, details = {}) {
    super(message, details);
    /** @type {string | undefined} */
    this.challengeName = details.challengeName;
  }
}

/**
 * The user cannot reach a place: the endpoint answered 403 `no_access`, or no
 * grant of the user's answer covers the bucket (and key) asked for.
 */
export class NoAccessError extends CredbrokerError {
  /**
   * @param {string} message
   * @param {ErrorDetails & {bucket?: string, key?: string, project?: string}} [details]
   */
  constructor(message, details = {}) {
    super(message, { code: 'no_access', ...details });
    /** @type {string | undefined} */
    this.bucket = details.bucket;
    /** @type {string | undefined} */
    this.key = details.key;
    /** @type {string | undefined} */
    this.project = details.project;
  }
}

/**
 * Write access was asked for a place the user may only read. `grant` is the
 * read grant that covers the place.
 */
export class ReadOnlyError extends NoAccessError {
  /**
   * @param {string} message
   * @param {ErrorDetails & {bucket?: string, key?: string, project?: string, grant?: import('./answer.js').Grant}} [details]
   */
  constructor(message, details = {}) {
    super(message, { code: 'read_only', ...details });
    /** @type {import('./answer.js').Grant | undefined} */
    this.grant = details.grant;
  }
}

/**
 * The user's grants on a bucket are split over several credential sets and
 * the caller did not say which key or folder it wants, so no single set is
 * right. Ask for a provider with a `key`.
 */
export class RoutingError extends CredbrokerError {
  /**
   * @param {string} message
   * @param {ErrorDetails & {bucket?: string}} [details]
   */
  constructor(message, details = {}) {
    super(message, { code: 'ambiguous_route', ...details });
    /** @type {string | undefined} */
    this.bucket = details.bucket;
  }
}

/**
 * The endpoint is unavailable: 503 (or 429) after the bounded retries, a
 * Retry-After longer than the module is willing to wait, or no answer at all
 * (network error, CORS refusal). `retryAfterMs` says when to try again, when
 * the server said.
 */
export class UnavailableError extends CredbrokerError {
  /**
   * @param {string} message
   * @param {ErrorDetails & {retryAfterMs?: number}} [details]
   */
  constructor(message, details = {}) {
    super(message, { code: 'unavailable', ...details });
    /** @type {number | undefined} */
    this.retryAfterMs = details.retryAfterMs;
  }
}

/**
 * Any other refusal or a malformed answer: `status` and the server's `code`
 * (`bad_request`, ...), or code `bad_answer` when a 200 answer does not have
 * the documented shape (nothing of it is used).
 */
export class EndpointError extends CredbrokerError {}
