package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
)

// This file holds a user's session with one stack, shared by login,
// credential-process and env: where its tokens and cached credentials
// live, the token source, and the choice of a credential set.

// How long handed-out credentials must stay valid. botocore (the AWS CLI,
// boto3) runs credential_process again once the credentials it holds have
// less than 15 minutes left (advisory: a failure is ignored while they
// work) and insists on new ones below 10 (mandatory: a failure fails the
// call). So:
//   - cached credentials are refetched when less than reuseMargin is left,
//     a minute past the 15, so that credentials from a long session (up to
//     an hour) satisfy botocore until its next advisory refresh and it does
//     not run the command on every call;
//   - credentials with less than minValidity left are never handed out (a
//     freshly minted set is asked for instead), a minute past the 10, so
//     that botocore's refresh is always the advisory one, which survives
//     an unreachable endpoint.
//
// With 15-minute sessions (the template's default) no credentials can
// have 15 minutes left when botocore gets them: it runs the command on
// nearly every call, the cache answers, and a new set is minted about every
// 4 minutes (15 - minValidity). docs/clients.md "CLI and AWS CLI profiles" says
// the same to users.
//
// The command cannot see S3 refuse what it handed out, so it asks the
// endpoint again once its answer is revalidate old (the endpoint answers
// from its own cache unless something changed): a revocation reaches the
// cache within that, the next run after it (docs/security.md "Clients after a revocation").
const (
	reuseMargin = 16 * time.Minute
	minValidity = 11 * time.Minute
	revalidate  = 10 * time.Second
)

// Cognito's patterns for the ids that name the token file.
var (
	poolIDPattern   = regexp.MustCompile(`^[\w-]+_[0-9a-zA-Z]+$`)
	clientIDPattern = regexp.MustCompile(`^[\w+]+$`)
)

// The shapes of bucket names and project ids: the endpoint grants nothing
// else (docs/contract.md "Source records").
var (
	bucketPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	projectPattern = regexp.MustCompile(`^[A-Za-z0-9._:@=+-]{1,128}$`)
)

// session is a user's session with one stack.
type session struct {
	tgt cli.Target
	// where names the stack on a command line (" --stack FILE" or ""), for
	// the commands an error suggests.
	where string
	// dir holds the files of every stack; key names this stack's
	// (one user pool and app client).
	dir, key string
	tokens   *cognitoauth.Source
	// warnings collects the client's warnings, shown only on success so
	// that an error stays one line.
	warnings bytes.Buffer
}

// openSession resolves the stack (its user pool and app client, and the
// parts in need) and the user's token source for it; it calls nothing.
func openSession(env *cli.Env, tf *cli.TargetFlags, flow cognitoauth.Flow, need ...cli.Part) (*session, error) {
	tgt, err := tf.Resolve(env, append([]cli.Part{cli.UserPool, cli.Client}, need...)...)
	if err != nil {
		return nil, err
	}
	if !poolIDPattern.MatchString(tgt.UserPoolID) {
		return nil, cli.Usagef("user pool id %q is not a Cognito user pool id (<region>_<id>)", tgt.UserPoolID)
	}
	if !clientIDPattern.MatchString(tgt.UserPoolClientID) {
		return nil, cli.Usagef("app client id %q is not a Cognito app client id", tgt.UserPoolClientID)
	}
	base := env.ConfigDir
	if base == "" {
		if base, err = os.UserConfigDir(); err != nil {
			return nil, cli.Usagef("no configuration directory to keep the tokens in: %v", err)
		}
	}
	s := &session{tgt: tgt, where: tf.Where(), dir: filepath.Join(base, "credbroker"), key: tgt.UserPoolID + "." + tgt.UserPoolClientID}
	s.tokens, err = cognitoauth.New(cognitoauth.Config{
		Client: s.cognito(), UserPoolID: tgt.UserPoolID, ClientID: tgt.UserPoolClientID,
		Flow: flow, Store: tokenStore{cognitoauth.FileStore{Path: s.tokenFile()}}, Now: env.Now,
	})
	if err != nil {
		return nil, cli.Usagef("%s", trimPrefix(err))
	}
	return s, nil
}

// tokenStore is the user's token file. A file it cannot use (not a token
// file, or readable by others) is a sign-in problem: `credbroker login`
// replaces it.
type tokenStore struct{ cognitoauth.FileStore }

func (t tokenStore) Load(ctx context.Context) (*cognitoauth.Tokens, error) {
	tok, err := t.FileStore.Load(ctx)
	if err != nil {
		return nil, &tokenFileError{err}
	}
	return tok, nil
}

type tokenFileError struct{ err error }

func (e *tokenFileError) Error() string { return e.err.Error() }
func (e *tokenFileError) Unwrap() error { return e.err }

// cognito returns the Cognito client: moto's for a local stack; else the
// pool's region, with no AWS credentials (sign-in and refresh are
// unauthenticated calls, and the user may have no others).
func (s *session) cognito() *cip.Client {
	if s.tgt.Local {
		return cip.NewFromConfig(awsconfig.Local(s.tgt.Region, s.tgt.AWSEndpoint))
	}
	region := s.tgt.Region
	if region == "" {
		region, _, _ = strings.Cut(s.tgt.UserPoolID, "_")
	}
	return cip.NewFromConfig(aws.Config{Region: region, Credentials: aws.AnonymousCredentials{}, HTTPClient: awsconfig.HTTPClient()})
}

func (s *session) tokenFile() string { return filepath.Join(s.dir, s.key+".tokens.json") }

// credentialFile is where one user's answers are cached: per user, so
// that another sign-in on the same stack never meets them.
func (s *session) credentialFile(username string) string {
	h := sha256.Sum256([]byte(username))
	return filepath.Join(s.dir, s.key+"."+hex.EncodeToString(h[:8])+".credentials.json")
}

// forget removes a user's cached credentials.
func (s *session) forget(username string) error {
	if err := os.Remove(s.credentialFile(username)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// setFlags choose one credential set of the user's answer.
type setFlags struct {
	bucket, key, access, project string
}

func addSetFlags(fs *flag.FlagSet) *setFlags {
	f := &setFlags{}
	fs.StringVar(&f.bucket, "bucket", "", "the bucket the credentials are for: the set holding it")
	fs.StringVar(&f.key, "key", "", "with --bucket: a key or folder (raw/) the set must reach")
	fs.StringVar(&f.access, "access", "", "with --bucket: the access the set must have, read (default) or write")
	fs.StringVar(&f.project, "project", "", "a project: the credentials reach only its grants")
	return f
}

// target checks the flags and returns what they choose.
func (f *setFlags) target() (client.Target, error) {
	switch {
	case f.bucket == "" && f.project == "":
		return client.Target{}, cli.Usagef("name the credentials' scope: --bucket B (or --project P)")
	case f.bucket == "" && (f.key != "" || f.access != ""):
		return client.Target{}, cli.Usagef("--key and --access choose within a bucket: they need --bucket")
	case f.access != "" && f.access != string(client.Read) && f.access != string(client.Write):
		return client.Target{}, cli.Usagef("--access must be read or write, not %q", f.access)
	case f.bucket != "" && !bucketPattern.MatchString(f.bucket):
		return client.Target{}, cli.Usagef("--bucket %q is not an S3 bucket name (3-63 of a-z 0-9 . -)", f.bucket)
	case f.project != "" && !projectPattern.MatchString(f.project):
		return client.Target{}, cli.Usagef("--project %q is not a project id (1-128 of A-Z a-z 0-9 . _ : @ = + -)", f.project)
	case strings.IndexFunc(f.key, unicode.IsControl) >= 0:
		return client.Target{}, cli.Usagef("--key %q has control characters", f.key)
	}
	return client.Target{Bucket: f.bucket, Key: f.key, Access: client.Access(f.access), Project: f.project}, nil
}

// handOut parses the arguments of a command that hands out the
// credentials of one set (credential-process, env), and returns them and
// the session and target they are for.
func handOut(ctx context.Context, env *cli.Env, path string, args []string) (*session, client.Target, aws.Credentials, error) {
	fs := cli.NewFlags(env, path)
	tf := cli.AddTargetFlags(fs, userParts...)
	sf := addSetFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return nil, client.Target{}, aws.Credentials{}, err
	}
	t, err := sf.target()
	if err != nil {
		return nil, client.Target{}, aws.Credentials{}, err
	}
	s, err := openSession(env, tf, "", cli.APIURL)
	if err != nil {
		return nil, client.Target{}, aws.Credentials{}, err
	}
	creds, err := s.credentials(ctx, env, t)
	return s, t, creds, err
}

// userParts are the parts of a stack the user commands use.
var userParts = []cli.Part{cli.APIURL, cli.UserPool, cli.Client}

// client returns the endpoint's client for the signed-in user, with the
// user's cache of answers.
func (s *session) client(ctx context.Context, env *cli.Env) (*client.Client, error) {
	// The tokens name the user whose cache to read; without them nothing
	// is handed out, cached or not.
	tok, err := s.tokens.Tokens(ctx)
	if err != nil {
		return nil, s.userError(err)
	}
	c, err := client.New(s.tgt.APIURL, s.tokens, func(o *client.Options) {
		o.Cache = client.FileCache{Path: s.credentialFile(tok.Username)}
		o.Margin = reuseMargin
		o.Revalidate = revalidate
		o.Now = env.Now
		o.UserAgent = "credbroker-cli"
		o.Logger = slog.New(slog.NewTextHandler(&s.warnings, &slog.HandlerOptions{
			Level: slog.LevelWarn,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			},
		}))
	})
	if err != nil {
		return nil, cli.Usagef("%s", trimPrefix(err))
	}
	return c, nil
}

// credentials returns the credentials of the set that reaches t, from the
// cache while they stay valid long enough (reuseMargin, minValidity).
func (s *session) credentials(ctx context.Context, env *cli.Env, t client.Target) (aws.Credentials, error) {
	c, err := s.client(ctx, env)
	if err != nil {
		return aws.Credentials{}, err
	}
	creds, err := c.Credentials(ctx, t)
	var ee *client.EndpointError
	if errors.Is(err, client.ErrNoAccess) && !errors.As(err, &ee) {
		// The answer held does not cover t, but it may predate a grant:
		// ask again, letting the endpoint answer from its cache.
		if _, err = c.Reload(ctx, t.Project); err == nil {
			creds, err = c.Credentials(ctx, t)
		}
	}
	if err == nil && creds.Expires.Sub(env.Now()) < minValidity {
		// Cached here or by the endpoint, and too close to expiry for
		// botocore: a freshly minted set.
		if _, err = c.Refresh(ctx, t.Project); err == nil {
			creds, err = c.Credentials(ctx, t)
		}
	}
	if err != nil {
		return aws.Credentials{}, s.userError(err)
	}
	return creds, nil
}

// flushWarnings shows the warnings collected while the command succeeded.
func (s *session) flushWarnings(env *cli.Env) {
	_, _ = env.Stderr.Write(s.warnings.Bytes())
}

// login is the command that signs the user in to this stack.
func (s *session) login() string {
	return "credbroker login" + s.where + " --username NAME"
}

// userError turns an error of the client packages into what the user can
// act on: its message names the next step, and its kind gives the exit
// status (exitcode.Of): sign-in problems SignIn, refusals NoAccess,
// mistakes of the caller's Usage, the rest Failure.
func (s *session) userError(err error) error {
	const op = "credentials"
	var tf *tokenFileError
	var ue *url.Error
	switch {
	case errors.As(err, &tf):
		return broker.Errorf(broker.Unauthenticated, op, "%s; run `%s` to sign in again, which replaces the file",
			strings.TrimSuffix(trimPrefix(tf.err), "; sign in again"), s.login())
	case errors.Is(err, cognitoauth.ErrSignInRequired):
		return broker.Errorf(broker.Unauthenticated, op, "not signed in to this stack (user pool %s), or the sign-in expired: run `%s`", s.tgt.UserPoolID, s.login())
	case errors.Is(err, client.ErrInvalidToken):
		return broker.Errorf(broker.Unauthenticated, op, "%s: run `%s` to sign in again", trimPrefix(err), s.login())
	case errors.Is(err, client.ErrNoAccess):
		return broker.Errorf(broker.NoAccess, op, "%s; `credbroker grants%s` lists what you can reach", trimPrefix(err), s.where)
	case errors.Is(err, client.ErrBadRequest), errors.Is(err, client.ErrAmbiguousTarget):
		return cli.Usagef("%s", trimPrefix(err))
	case errors.As(err, &ue) && !errors.Is(err, context.Canceled):
		return broker.Errorf(broker.Transient, op, "cannot reach the credential endpoint at %s: %s; %s", s.tgt.APIURL, cli.URLCause(ue), s.reachHint())
	}
	return broker.Errorf(broker.Transient, op, "%s", trimPrefix(err))
}

// reachHint says what to check when the endpoint cannot be reached.
func (s *session) reachHint() string {
	if s.tgt.Local {
		return cli.LocalStackDown
	}
	return "check --api-url (or CREDBROKER_API_URL: the stack's ApiUrl output), and that the stack is deployed and running"
}

// poolHint says what to check when the user pool's sign-in cannot be
// reached.
func (s *session) poolHint() string {
	if s.tgt.Local {
		return cli.LocalStackDown
	}
	return "check --region and --user-pool-id (or CREDBROKER_REGION and CREDBROKER_USER_POOL_ID: the stack's UserPoolId output), and the network"
}

// trimPrefix drops the package prefix of the client packages' messages:
// run already names the command.
func trimPrefix(err error) string {
	msg := err.Error()
	for _, p := range []string{"credbroker: ", "cognitoauth: "} {
		msg = strings.ReplaceAll(strings.TrimPrefix(msg, p), ": "+p, ": ")
	}
	return msg
}
