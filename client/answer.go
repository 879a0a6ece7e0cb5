package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Access is the level of a grant.
type Access string

const (
	Read  Access = "read"
	Write Access = "write"
)

// Covers reports whether a grant at level a allows what level b allows:
// write covers read.
func (a Access) Covers(b Access) bool { return a == b || (a == Write && b == Read) }

// Grant is a place the user can reach: a whole bucket (Prefix "") or the
// keys under a folder (Prefix ends with "/"), through the listed projects.
type Grant struct {
	Bucket   string   `json:"bucket"`
	Prefix   string   `json:"prefix"`
	Access   Access   `json:"access"`
	Projects []string `json:"projects"`
	// ExpiresAt, when set, is when the grant ends: every membership giving
	// it is time-bounded, and the last of them ends then. From that
	// instant AWS denies what only this grant reached, whatever the set's
	// Expiration says. Zero means no end.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// Covers reports whether g reaches key in bucket at level a; key "" means
// the whole bucket, which only a whole-bucket grant covers.
func (g Grant) Covers(bucket, key string, a Access) bool {
	if g.Bucket != bucket || !g.Access.Covers(a) {
		return false
	}
	if key == "" {
		return g.Prefix == ""
	}
	return strings.HasPrefix(key, g.Prefix)
}

// CredentialSet is one set of temporary credentials and the grants it
// reaches, and only those.
type CredentialSet struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiration      time.Time `json:"expiration"`
	// Issued is when STS issued the set, zero when the endpoint did not
	// say (an optional field).
	Issued time.Time `json:"issued,omitzero"`
	Grants []Grant   `json:"grants"`
}

// Credentials returns the set as AWS SDK credentials.
func (s *CredentialSet) Credentials() aws.Credentials {
	return aws.Credentials{
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken,
		Source: CredentialsSource, CanExpire: true, Expires: s.Expiration,
	}
}

// String describes s without its secrets, so that printing or logging an
// answer leaks nothing.
func (s CredentialSet) String() string {
	return fmt.Sprintf("{AccessKeyID: %s, Expiration: %s, Grants: %v, secrets: [redacted]}",
		s.AccessKeyID, s.Expiration.UTC().Format(time.RFC3339), s.Grants)
}

// GoString is String, for %#v.
func (s CredentialSet) GoString() string { return s.String() }

// LogValue is String, for log/slog.
func (s CredentialSet) LogValue() slog.Value { return slog.StringValue(s.String()) }

// CredentialsSource is the Source of the aws.Credentials this package returns.
const CredentialsSource = "credbroker"

// Answer is the endpoint's 200 answer (docs/contract.md "Credential endpoint").
type Answer struct {
	UserID        string `json:"userId"`
	PolicyVersion string `json:"policyVersion"`
	// Expiration is the earliest expiry over all sets.
	Expiration     time.Time       `json:"expiration"`
	CredentialSets []CredentialSet `json:"credentialSets"`
	// RevokedBefore is the user's revocation cutoff the sets were minted
	// under (zero for none): sets minted under an earlier one are denied.
	// Optional, as are the two fields below.
	RevokedBefore time.Time `json:"revokedBefore,omitzero"`
	// AllRevokedBefore, when set, is the deny list's fallback: every
	// session issued before it is denied, whoever its user.
	AllRevokedBefore time.Time `json:"allRevokedBefore,omitzero"`

	// byBucket indexes the grants for routing.
	byBucket map[string][]route
	// grantsEnd is the earliest ExpiresAt of the grants, zero for none.
	grantsEnd time.Time
}

// route is one grant of one bucket, and its set.
type route struct {
	set    int
	prefix string
	access Access
}

// Target says what credentials must reach.
type Target struct {
	// Bucket is the bucket; "" means the only set of the answer (an
	// answer with several sets then needs a bucket).
	Bucket string
	// Key is an object key or a folder ("raw/"); "" means the whole
	// bucket: the set holding the bucket's grants.
	Key string
	// Access defaults to Read; a write grant covers read.
	Access Access
	// Project, when set, asks the endpoint for that project's grants only
	// (?project=).
	Project string
}

func (t Target) access() Access {
	if t.Access == "" {
		return Read
	}
	return t.Access
}

// String names t as "s3://bucket/key (read) in project p".
func (t Target) String() string {
	var b strings.Builder
	if t.Bucket == "" {
		b.WriteString("the grants")
	} else {
		b.WriteString("s3://" + t.Bucket + "/" + t.Key)
	}
	b.WriteString(" (" + string(t.access()) + ")")
	if t.Project != "" {
		b.WriteString(" in project " + t.Project)
	}
	return b.String()
}

// SetFor returns the credential set that reaches t. With a key, it is a
// set with a grant covering the key (the most specific grant when several
// do); without one, the set with a whole-bucket grant, or else the one set
// holding the bucket's folders. An AccessError (errors.Is ErrNoAccess)
// says that no set reaches t; ErrAmbiguousTarget that the bucket's folders
// are spread over sets and a key must choose.
func (a *Answer) SetFor(t Target) (*CredentialSet, error) {
	want := t.access()
	if t.Bucket == "" {
		if len(a.CredentialSets) == 1 {
			return &a.CredentialSets[0], nil
		}
		return nil, fmt.Errorf("%w: %s need %d credential sets: name a bucket", ErrAmbiguousTarget, t, len(a.CredentialSets))
	}
	best, bestLen := -1, -1
	var holders []int // sets with a folder grant of the bucket, for Key ""
	for _, r := range a.routes(t.Bucket) {
		if !r.access.Covers(want) {
			continue
		}
		switch {
		case t.Key == "" && r.prefix == "":
			return &a.CredentialSets[r.set], nil
		case t.Key == "":
			if !slices.Contains(holders, r.set) {
				holders = append(holders, r.set)
			}
		case strings.HasPrefix(t.Key, r.prefix) && len(r.prefix) > bestLen:
			best, bestLen = r.set, len(r.prefix)
		}
	}
	switch {
	case best >= 0:
		return &a.CredentialSets[best], nil
	case len(holders) == 1:
		return &a.CredentialSets[holders[0]], nil
	case len(holders) > 1:
		return nil, fmt.Errorf("%w: the folders of bucket %s are spread over %d credential sets: name a key", ErrAmbiguousTarget, t.Bucket, len(holders))
	}
	return nil, &AccessError{Target: t, Detail: a.reach(t.Bucket)}
}

// routes returns the grants of bucket, from the index that decoding
// builds, or by a scan for an Answer built by hand.
func (a *Answer) routes(bucket string) []route {
	if a.byBucket != nil {
		return a.byBucket[bucket]
	}
	var out []route
	for i, s := range a.CredentialSets {
		for _, g := range s.Grants {
			if g.Bucket == bucket {
				out = append(out, route{set: i, prefix: folder(g.Prefix), access: g.Access})
			}
		}
	}
	return out
}

// folder normalizes a prefix: "raw" and "raw/" both mean the keys under raw/.
func folder(prefix string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return prefix + "/"
	}
	return prefix
}

// reach says what the answer grants in bucket, for an AccessError.
func (a *Answer) reach(bucket string) string {
	routes := a.routes(bucket)
	if len(routes) == 0 {
		return "the user's grants do not include this bucket"
	}
	var parts []string
	for i, r := range routes {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(routes)-i))
			break
		}
		where := "the whole bucket"
		if r.prefix != "" {
			where = r.prefix
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", where, r.access))
	}
	return "the user can reach in this bucket: " + strings.Join(parts, ", ")
}

// hasKey reports whether one of the answer's sets has the access key id.
func (a *Answer) hasKey(id string) bool {
	return slices.ContainsFunc(a.CredentialSets, func(s CredentialSet) bool { return s.AccessKeyID == id })
}

// clone returns a deep copy, so that callers cannot change what is cached.
func (a *Answer) clone() *Answer {
	c := *a
	c.CredentialSets = slices.Clone(a.CredentialSets)
	for i := range c.CredentialSets {
		s := &c.CredentialSets[i]
		s.Grants = slices.Clone(s.Grants)
		for j := range s.Grants {
			s.Grants[j].Projects = slices.Clone(s.Grants[j].Projects)
		}
	}
	return &c
}

// maxAnswerBytes bounds what is read of a 200 answer: about 850 grants of
// 200 bytes in a few sets of credentials fit many times over.
const maxAnswerBytes = 4 << 20

// parseAnswer decodes and checks an answer. Fields the contract does not
// name are ignored (new optional fields are not a breaking change), but
// every field it names must be there and make sense, and nothing may
// follow the object.
func parseAnswer(body []byte) (*Answer, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var a Answer
	if err := dec.Decode(&a); err != nil {
		return nil, malformed("not the answer's JSON object: %v", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed("data after the JSON object")
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return &a, nil
}

// jsonProblem describes a decoding error without quoting the input, which
// holds secrets.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "invalid value" // e.g. a time that is not RFC 3339
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedAnswer, fmt.Sprintf(format, args...))
}

// check validates a decoded answer, normalizes folder prefixes to end with
// "/", takes Expiration as the earliest of the sets' expiries and builds the
// routing index.
func (a *Answer) check() error {
	switch {
	case a.UserID == "":
		return malformed("no userId")
	case a.PolicyVersion == "":
		return malformed("no policyVersion")
	case a.Expiration.IsZero():
		return malformed("no expiration")
	case len(a.CredentialSets) == 0:
		return malformed("no credentialSets")
	}
	a.byBucket = map[string][]route{}
	for i := range a.CredentialSets {
		s := &a.CredentialSets[i]
		if s.AccessKeyID == "" || s.SecretAccessKey == "" || s.SessionToken == "" {
			return malformed("credential set %d lacks accessKeyId, secretAccessKey or sessionToken", i)
		}
		if s.Expiration.IsZero() {
			return malformed("credential set %d has no expiration", i)
		}
		if len(s.Grants) == 0 {
			return malformed("credential set %d has no grants", i)
		}
		if s.Expiration.Before(a.Expiration) {
			a.Expiration = s.Expiration
		}
		for j := range s.Grants {
			g := &s.Grants[j]
			if g.Bucket == "" || strings.ContainsAny(g.Bucket, "/*? ") {
				return malformed("credential set %d, grant %d: invalid bucket", i, j)
			}
			if g.Access != Read && g.Access != Write {
				return malformed("credential set %d, grant %d: access %q is neither read nor write", i, j, g.Access)
			}
			g.Prefix = folder(g.Prefix)
			if !g.ExpiresAt.IsZero() && (a.grantsEnd.IsZero() || g.ExpiresAt.Before(a.grantsEnd)) {
				a.grantsEnd = g.ExpiresAt
			}
			a.byBucket[g.Bucket] = append(a.byBucket[g.Bucket], route{set: i, prefix: g.Prefix, access: g.Access})
		}
	}
	return nil
}
