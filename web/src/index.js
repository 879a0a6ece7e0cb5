// credbroker's browser client: Cognito sign-in, the user's credential sets
// from GET /auths/resources, and per-bucket credential providers for the AWS
// SDK for JavaScript v3. See web/README.md.

export { CredentialBroker, isAccessDenied, retryAfterMs } from './broker.js';
export { CognitoAuth, CognitoSession, decodeJwt } from './cognito.js';
export { expiresIn, grantsOf, parseAnswer, route } from './answer.js';
export { explainS3Error } from './s3errors.js';
export {
  AuthError,
  CredbrokerError,
  EndpointError,
  NoAccessError,
  ReadOnlyError,
  RoutingError,
  SignInError,
  UnavailableError,
} from './errors.js';
