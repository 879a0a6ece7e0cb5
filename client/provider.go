package client

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Provider is an aws.CredentialsProvider for one target: each Retrieve
// returns the credentials of the set that reaches it, from the Client's
// cache. Retrieve is cheap, so an S3 client may call it for every request;
// wrapping it in aws.CredentialsCache is not needed (and would keep a set
// after Invalidate until it expires).
type Provider struct {
	c *Client
	t Target
}

var _ aws.CredentialsProvider = (*Provider)(nil)

// Provider returns the credentials provider for t.
func (c *Client) Provider(t Target) *Provider { return &Provider{c: c, t: t} }

// CredentialsProvider returns the provider for a bucket: the set with a
// whole-bucket grant on it, or else the set holding its folders.
func (c *Client) CredentialsProvider(bucket string) *Provider {
	return c.Provider(Target{Bucket: bucket})
}

// ObjectCredentialsProvider returns the provider for a key (or a folder
// such as "raw/") of a bucket at the access level needed.
func (c *Client) ObjectCredentialsProvider(bucket, key string, access Access) *Provider {
	return c.Provider(Target{Bucket: bucket, Key: key, Access: access})
}

// Retrieve returns the credentials of the set that reaches the target.
func (p *Provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	return p.c.Credentials(ctx, p.t)
}

// Target is what the provider's credentials reach.
func (p *Provider) Target() Target { return p.t }

// RetryOnAccessDenied is an API option for the S3 client that uses p:
//
//	s3.NewFromConfig(cfg, func(o *s3.Options) {
//		o.Credentials = p
//		o.APIOptions = append(o.APIOptions, p.RetryOnAccessDenied)
//	})
//
// When S3 refuses the request (403, or an expired or invalid token) with
// the set the Client holds for p's target, the Client drops its answer and
// the SDK's retryer tries the request again, with credentials fetched anew
// with Cache-Control: no-cache: revoked credentials are replaced at the
// first refusal. At most MaxDeniedRefetches such refetches per
// DeniedRefetchInterval, DeniedRecheck apart: a refusal that fresh
// credentials do not cure is a real one and is returned.
func (p *Provider) RetryOnAccessDenied(stack *middleware.Stack) error {
	// Last in the finalize step: inside the retry loop, after signing,
	// so that the request shows the access key it was signed with.
	return stack.Finalize.Add(&deniedRetry{p: p}, middleware.After)
}

type deniedRetry struct{ p *Provider }

func (*deniedRetry) ID() string { return "credbroker:RetryOnAccessDenied" }

func (m *deniedRetry) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleFinalize(ctx, in)
	if err == nil || !refused(err) {
		return out, md, err
	}
	if m.p.c.denied(m.p.t.Project, signingKey(in.Request)) {
		err = &retryableDenial{err}
	}
	return out, md, err
}

// refused reports whether S3 refused the credentials.
func refused(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidAccessKeyId":
			return true
		}
	}
	return false
}

// signingKey returns the access key id a request was signed with, from
// its SigV4 Authorization header (or presigned query).
func signingKey(r any) string {
	req, ok := r.(*smithyhttp.Request)
	if !ok {
		return ""
	}
	cred := req.URL.Query().Get("X-Amz-Credential")
	if auth := req.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred = after
		}
	}
	id, _, _ := strings.Cut(cred, "/")
	return id
}

// retryableDenial tells the SDK's standard retryer to try again (it asks
// errors for RetryableError).
type retryableDenial struct{ error }

func (e *retryableDenial) Unwrap() error        { return e.error }
func (e *retryableDenial) RetryableError() bool { return true }

// denied handles S3's refusal of the set signed with keyID for project's
// answer, and says whether a retry may succeed.
func (c *Client) denied(project, keyID string) bool {
	c.mu.Lock()
	e := c.entries[project]
	now := c.o.Now()
	switch {
	case e == nil || e.answer == nil:
		c.mu.Unlock()
		return true // already dropped: the retry fetches
	case keyID != "" && !e.answer.hasKey(keyID):
		c.mu.Unlock()
		return true // the cache holds newer credentials already
	}
	e.forced = slices.DeleteFunc(e.forced, func(at time.Time) bool { return now.Sub(at) >= c.o.DeniedRefetchInterval })
	if n := len(e.forced); n >= MaxDeniedRefetches || n > 0 && now.Sub(e.forced[n-1]) < DeniedRecheck {
		c.mu.Unlock()
		return false
	}
	e.forced = append(e.forced, now)
	e.answer, e.noCache = nil, true
	snap := c.snapshotLocked()
	c.mu.Unlock()
	c.persist(snap)
	return true
}
