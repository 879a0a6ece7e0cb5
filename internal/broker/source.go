package broker

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Key prefixes of the membership table (docs/contract.md "Source records").
const (
	UserKeyPrefix    = "USER#"
	ProjectKeyPrefix = "PROJECT#"
	BucketKeyPrefix  = "BUCKET#"
)

// Limits of the source schema.
const (
	MaxProjectIDLen = 128
	MaxUserIDLen    = 64
	MaxPrefixLen    = 1024
)

// RecordKind says what a membership-table item is.
type RecordKind uint8

const (
	// Ignored items have a key shape the broker does not own.
	Ignored RecordKind = iota
	MembershipRecord
	BucketRecord
)

func (k RecordKind) String() string {
	switch k {
	case MembershipRecord:
		return "membership"
	case BucketRecord:
		return "bucket"
	default:
		return "ignored"
	}
}

// Attr is one attribute of a source item in a form free of any SDK: whether
// it is present, its DynamoDB type letter ("S", "N", "BOOL", ...) and, for
// strings, its value.
type Attr struct {
	Present bool
	Type    string
	S       string
}

// StringAttr returns a present string attribute.
func StringAttr(s string) Attr { return Attr{Present: true, Type: "S", S: s} }

// SourceItem is a membership-table item reduced to what the broker reads.
type SourceItem struct {
	PK, SK    string
	Role      Attr
	Prefix    Attr
	ExpiresAt Attr // memberships only (docs/contract.md "Source records")
}

// Ref names the user or project a source item concerns. It is filled in as
// far as the keys could be parsed, even when the item is invalid, so that a
// change to an invalid item can still revoke what it used to grant.
type Ref struct {
	Kind      RecordKind
	UserID    string // membership records
	ProjectID string // both kinds
	Bucket    string // bucket records
}

// ParsedItem is a source item after validation.
type ParsedItem struct {
	Ref
	Membership Membership    // when Kind == MembershipRecord
	Bucket     ProjectBucket // when Kind == BucketRecord
}

// ParseRef classifies an item by its keys alone. It returns an Invalid error
// for keys of a known shape whose identifiers break the schema; the returned
// Ref then holds every identifier that is valid.
func ParseRef(pk, sk string) (Ref, error) {
	const op = "parse key"
	switch {
	case strings.HasPrefix(pk, UserKeyPrefix) && strings.HasPrefix(sk, ProjectKeyPrefix):
		ref := Ref{Kind: MembershipRecord}
		user, project := pk[len(UserKeyPrefix):], sk[len(ProjectKeyPrefix):]
		if err := ValidateUserID(user); err != nil {
			return ref, Errorf(Invalid, op, "membership %s/%s: %s", pk, sk, MessageOf(err))
		}
		ref.UserID = user
		if err := ValidateProjectID(project); err != nil {
			return ref, Errorf(Invalid, op, "membership %s/%s: %s", pk, sk, MessageOf(err))
		}
		ref.ProjectID = project
		return ref, nil
	case strings.HasPrefix(pk, ProjectKeyPrefix) && strings.HasPrefix(sk, BucketKeyPrefix):
		ref := Ref{Kind: BucketRecord}
		project, bucket := pk[len(ProjectKeyPrefix):], sk[len(BucketKeyPrefix):]
		if err := ValidateProjectID(project); err != nil {
			return ref, Errorf(Invalid, op, "bucket %s/%s: %s", pk, sk, MessageOf(err))
		}
		ref.ProjectID = project
		if err := ValidateBucketName(bucket); err != nil {
			return ref, Errorf(Invalid, op, "bucket %s/%s: %s", pk, sk, MessageOf(err))
		}
		ref.Bucket = bucket
		return ref, nil
	}
	return Ref{Kind: Ignored}, nil
}

// Parse validates a whole source item: keys and attributes.
func (it SourceItem) Parse() (ParsedItem, error) {
	ref, err := ParseRef(it.PK, it.SK)
	p := ParsedItem{Ref: ref}
	if err != nil || ref.Kind == Ignored {
		return p, err
	}
	const op = "parse item"
	switch ref.Kind {
	case MembershipRecord:
		access, err := parseRole(it.Role)
		if err != nil {
			return p, Errorf(Invalid, op, "membership %s/%s: %s", it.PK, it.SK, MessageOf(err))
		}
		expires, err := ParseExpiresAt(it.ExpiresAt)
		if err != nil {
			return p, Errorf(Invalid, op, "membership %s/%s: %s", it.PK, it.SK, MessageOf(err))
		}
		p.Membership = Membership{UserID: ref.UserID, ProjectID: ref.ProjectID, Access: access, ExpiresAt: expires}
	case BucketRecord:
		prefix, err := parsePrefix(it.Prefix)
		if err != nil {
			return p, Errorf(Invalid, op, "bucket %s/%s: %s", it.PK, it.SK, MessageOf(err))
		}
		p.Bucket = ProjectBucket{ProjectID: ref.ProjectID, Bucket: ref.Bucket, Prefix: prefix}
	}
	return p, nil
}

// parseRole reads the role attribute. Only absence means "read": a NULL or
// any other unexpected value is refused, never guessed.
func parseRole(a Attr) (Access, error) {
	if !a.Present {
		return Read, nil
	}
	if a.Type != "S" {
		return "", Errorf(Invalid, "role", "role must be a string, got type %s", a.Type)
	}
	if acc := Access(a.S); acc.Valid() {
		return acc, nil
	}
	return "", Errorf(Invalid, "role", "role %q is not \"read\" or \"write\"", truncate(a.S, 32))
}

// ParseExpiresAt reads a membership's expiresAt attribute: zero when
// absent (no expiry), else an RFC 3339 timestamp with an offset, returned
// in UTC and truncated to the second. Truncating ends the grant at most a
// second early, never late, and gives the session policy's aws:CurrentTime
// bound a form IAM reads everywhere. A past value is valid: the membership
// then grants nothing (Membership.LiveAt), which is not an error.
func ParseExpiresAt(a Attr) (time.Time, error) {
	if !a.Present {
		return time.Time{}, nil
	}
	if a.Type != "S" {
		return time.Time{}, Errorf(Invalid, "expiresAt", "expiresAt must be a string, got type %s", a.Type)
	}
	return ParseExpiry(a.S)
}

// ParseExpiry parses an RFC 3339 timestamp with an offset (time.RFC3339
// accepts only "Z" or ±hh:mm, and fractional seconds) as ParseExpiresAt does.
func ParseExpiry(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || t.Year() < 1970 {
		return time.Time{}, Errorf(Invalid, "expiresAt", "expiresAt %q is not an RFC 3339 timestamp with an offset (2026-12-31T18:00:00Z)", truncate(s, 40))
	}
	return t.UTC().Truncate(time.Second), nil
}

// parsePrefix reads the prefix attribute. Only absence means the whole
// bucket: a NULL or empty prefix is refused, since reading it as "no
// folder" would widen the grant to the whole bucket.
func parsePrefix(a Attr) (string, error) {
	if !a.Present {
		return "", nil
	}
	if a.Type != "S" {
		return "", Errorf(Invalid, "prefix", "prefix must be a string, got type %s", a.Type)
	}
	if a.S == "" {
		return "", Errorf(Invalid, "prefix", "prefix is empty: remove the attribute to grant the whole bucket")
	}
	return NormalizePrefix(a.S)
}

// ValidateProjectID checks the contract's project id: 1-128 characters of
// [A-Za-z0-9._:@=+-].
func ValidateProjectID(id string) error {
	if id == "" || len(id) > MaxProjectIDLen {
		return Errorf(Invalid, "project id", "project id must be 1-%d characters", MaxProjectIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) && !strings.ContainsRune("._:@=+-", rune(id[i])) {
			return Errorf(Invalid, "project id", "project id %q has a character outside [A-Za-z0-9._:@=+-]", truncate(id, 64))
		}
	}
	return nil
}

// ValidateUserID checks a user id (the Cognito sub). Besides being the key of
// the user's records it becomes the STS SourceIdentity, so it must fit that
// field: 2-64 characters of [A-Za-z0-9_+=,.@-]. Cognito subs are UUIDs.
func ValidateUserID(id string) error {
	if len(id) < 2 || len(id) > MaxUserIDLen {
		return Errorf(Invalid, "user id", "user id must be 2-%d characters", MaxUserIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) && !strings.ContainsRune("_+=,.@-", rune(id[i])) {
			return Errorf(Invalid, "user id", "user id %q has a character outside [A-Za-z0-9_+=,.@-]", truncate(id, 64))
		}
	}
	return nil
}

// Bucket name prefixes and suffixes that AWS reserves, so no general-purpose
// bucket can carry them.
var (
	reservedBucketPrefixes = []string{"xn--", "sthree-", "amzn-s3-demo-"}
	reservedBucketSuffixes = []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}
)

// ValidateBucketName checks the S3 general-purpose bucket naming rules. Only
// lowercase letters, digits, '.' and '-' pass, so no name can carry a policy
// wildcard or variable.
func ValidateBucketName(name string) error {
	const op = "bucket name"
	if len(name) < 3 || len(name) > 63 {
		return Errorf(Invalid, op, "bucket name %q must be 3-63 characters", truncate(name, 64))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return Errorf(Invalid, op, "bucket name %q may hold only lowercase letters, digits, '.' and '-'", name)
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return Errorf(Invalid, op, "bucket name %q must start and end with a letter or digit", name)
	}
	if strings.Contains(name, "..") {
		return Errorf(Invalid, op, "bucket name %q must not contain \"..\"", name)
	}
	// Only '.', '-', digits and lowercase letters got this far, so the only
	// address shape left is a dotted quad.
	if looksLikeIPv4(name) {
		return Errorf(Invalid, op, "bucket name %q must not be shaped like an IP address", name)
	}
	for _, p := range reservedBucketPrefixes {
		if strings.HasPrefix(name, p) {
			return Errorf(Invalid, op, "bucket name %q uses the reserved prefix %q", name, p)
		}
	}
	for _, s := range reservedBucketSuffixes {
		if strings.HasSuffix(name, s) {
			return Errorf(Invalid, op, "bucket name %q uses the reserved suffix %q", name, s)
		}
	}
	return nil
}

// looksLikeIPv4 catches dotted-quad shapes that netip rejects, such as
// leading zeros ("192.168.01.1"): S3 refuses those too.
func looksLikeIPv4(name string) bool {
	parts, digits := 1, 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if digits == 0 {
				return false
			}
			parts, digits = parts+1, 0
		case c >= '0' && c <= '9':
			if digits++; digits > 3 {
				return false
			}
		default:
			return false
		}
	}
	return parts == 4 && digits > 0
}

// NormalizePrefix validates a bucket record's prefix and returns it as a
// folder: "" for the whole bucket, otherwise ending in exactly the "/" the
// caller gave or one added ("raw/2024" and "raw/2024/" both give "raw/2024/").
// It refuses the characters that would mean something in a policy ('*', '?',
// '$'), control characters, invalid UTF-8, a leading '/' and more than
// MaxPrefixLen characters.
func NormalizePrefix(prefix string) (string, error) {
	const op = "prefix"
	if prefix == "" {
		return "", nil
	}
	if !utf8.ValidString(prefix) {
		return "", Errorf(Invalid, op, "prefix is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(prefix); n > MaxPrefixLen {
		return "", Errorf(Invalid, op, "prefix has %d characters, more than %d", n, MaxPrefixLen)
	}
	if prefix[0] == '/' {
		return "", Errorf(Invalid, op, "prefix %q must not start with '/'", truncate(prefix, 64))
	}
	for _, r := range prefix {
		switch {
		case r == '*' || r == '?' || r == '$':
			return "", Errorf(Invalid, op, "prefix %q must not contain %q", truncate(prefix, 64), r)
		case unicode.IsControl(r):
			return "", Errorf(Invalid, op, "prefix %q must not contain control characters", truncate(prefix, 64))
		}
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// truncate keeps error messages and log lines bounded for oversized input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
