// Package stsissuer implements broker.CredentialIssuer with sts:AssumeRole:
// one call per credential set, always with the set's inline session policy,
// so the credentials can never reach more than the base role's ceiling
// intersected with that policy.
package stsissuer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/credbroker/credbroker/internal/broker"
)

// AssumeRoleAPI is the one STS call the issuer makes.
type AssumeRoleAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Limits of AssumeRole's parameters.
const (
	MinDuration       = 15 * time.Minute
	MaxDuration       = 12 * time.Hour
	maxSessionNameLen = 64
)

// Config configures an Issuer. Both fields are required.
type Config struct {
	Client AssumeRoleAPI
	// RoleARN is the base role: its own policy is the ceiling of every
	// session, and the session policy narrows it to one user's grants.
	RoleARN string
}

// Issuer is a broker.CredentialIssuer over sts:AssumeRole. It is safe for
// concurrent use.
type Issuer struct {
	client  AssumeRoleAPI
	roleARN string
}

var _ broker.CredentialIssuer = (*Issuer)(nil)

// New checks cfg and returns an Issuer.
func New(cfg Config) (*Issuer, error) {
	const op = "stsissuer config"
	if cfg.Client == nil {
		return nil, broker.Errorf(broker.Internal, op, "STS client is required")
	}
	if err := broker.CheckRoleARN(cfg.RoleARN); err != nil {
		return nil, err
	}
	return &Issuer{client: cfg.Client, roleARN: cfg.RoleARN}, nil
}

const op = "assume role"

// Issue calls AssumeRole with the request's session policy, session name,
// duration, the user id as SourceIdentity, which CloudTrail carries into
// every S3 call made with the credentials, and the session tags
// broker.UserTagKey and broker.CutoffTagKey. A request without a policy is
// refused before any call: an AssumeRole without a session policy would
// hand out the whole base role.
func (i *Issuer) Issue(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
	if strings.TrimSpace(req.Policy) == "" {
		return broker.Credentials{}, broker.Errorf(broker.Internal, op, "refusing AssumeRole without a session policy")
	}
	if !ValidSessionName(req.SessionName) {
		return broker.Credentials{}, broker.Errorf(broker.Internal, op, "invalid role session name %q", req.SessionName)
	}
	if err := broker.ValidateUserID(req.UserID); err != nil {
		// SourceIdentity has the user id's own rules.
		return broker.Credentials{}, broker.Wrap(broker.Internal, op, err)
	}
	if req.Duration < MinDuration || req.Duration > MaxDuration || req.Duration%time.Second != 0 {
		return broker.Credentials{}, broker.Errorf(broker.Internal, op, "duration %v outside %v..%v in whole seconds", req.Duration, MinDuration, MaxDuration)
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(i.roleARN),
		RoleSessionName: aws.String(req.SessionName),
		SourceIdentity:  aws.String(req.UserID),
		Policy:          aws.String(req.Policy),
		DurationSeconds: aws.Int32(int32(req.Duration / time.Second)),
	}
	// Every session carries both tags: the deny list finds a revoked
	// user's sessions by them, and denies those that carry none.
	if !validTagValue(req.CutoffTag) {
		return broker.Credentials{}, broker.Errorf(broker.Internal, op, "invalid cutoff tag %q", req.CutoffTag)
	}
	in.Tags = []ststypes.Tag{
		{Key: aws.String(broker.UserTagKey), Value: aws.String(broker.UserTag(req.UserID))},
		{Key: aws.String(broker.CutoffTagKey), Value: aws.String(req.CutoffTag)},
	}
	out, err := i.client.AssumeRole(ctx, in)
	if err != nil {
		return broker.Credentials{}, Classify(ctx, err)
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" ||
		aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return broker.Credentials{}, broker.Errorf(broker.Internal, op, "AssumeRole answered without complete credentials")
	}
	return broker.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Expiration:      c.Expiration.UTC(),
	}, nil
}

// validTagValue reports whether s is a cutoff tag as broker.CutoffTag
// makes them: lower-case hex, well within IAM's 256 characters.
func validTagValue(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// ValidSessionName reports whether s is a valid RoleSessionName: 2-64
// characters of [A-Za-z0-9_+=,.@-].
func ValidSessionName(s string) bool {
	if len(s) < 2 || len(s) > maxSessionNameLen {
		return false
	}
	for i := range len(s) {
		if !sessionNameChar(s[i]) {
			return false
		}
	}
	return true
}

func sessionNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0
}

// Error codes of AssumeRole (and STS's common errors) that retrying cannot
// fix: the request, the policy or the deployment is wrong.
var permanentCodes = map[string]bool{
	"PackedPolicyTooLarge":        true,
	"MalformedPolicyDocument":     true,
	"RegionDisabledException":     true,
	"ExpiredTokenException":       true,
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"NotAuthorized":               true,
	"ValidationError":             true,
	"InvalidParameterValue":       true,
	"InvalidClientTokenId":        true,
	"IncompleteSignature":         true,
	"SignatureDoesNotMatch":       true,
	"MissingAuthenticationToken":  true,
	"OptInRequired":               true,
	"UnrecognizedClientException": true,
}

// Error codes that say "try again later" (Throttling is STS's spelling; the
// others are the common spellings of the SDK's retryable codes).
var transientCodes = map[string]bool{
	"Throttling":                  true,
	"ThrottlingException":         true,
	"RequestLimitExceeded":        true,
	"TooManyRequestsException":    true,
	"ServiceUnavailable":          true,
	"ServiceUnavailableException": true,
	"InternalFailure":             true,
	"InternalError":               true,
	"RequestTimeout":              true,
	"RequestTimeoutException":     true,
	"RequestExpired":              true,
}

// Classify gives an AssumeRole error its broker kind: Transient for
// throttling, 5xx, timeouts, an ended context and transport failures (the
// SDK has already retried them); Internal for everything STS refused on the
// merits. The error text stays in the chain for logs; the safe message
// names no ARN and quotes no AWS text.
func Classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	transient := &broker.Error{Kind: broker.Transient, Op: op, Message: "credential service unavailable", Err: err}
	internal := &broker.Error{Kind: broker.Internal, Op: op, Message: "credential issuance failed", Err: err}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return transient
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case code == "PackedPolicyTooLarge":
			internal.Err = fmt.Errorf("%w: %w", broker.ErrPolicyTooLarge, err)
			return internal
		case permanentCodes[code]:
			return internal
		case transientCodes[code]:
			return transient
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if sc := status.HTTPStatusCode(); sc >= 500 || sc == 429 {
			return transient
		}
	}
	if apiErr != nil {
		if apiErr.ErrorFault() == smithy.FaultServer {
			return transient
		}
		return internal
	}
	var quota ratelimit.QuotaExceededError
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	if errors.As(err, &quota) || errors.As(err, &send) || errors.As(err, &netErr) ||
		retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return transient
	}
	return internal
}
