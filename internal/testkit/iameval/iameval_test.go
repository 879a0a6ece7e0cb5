package iameval

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"a*", "a", true},
		{"a*", "a/b/c", true},
		{"*", "", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "abbc", false},
		{"arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/raw/x/y", true},
		{"arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/raw", false},
		{"arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/rawx/y", false},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::bb/x", false},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxbc", false},
		{"日*", "日本", true},
		{"?", "日", true},
		{"a*b", "a*xb", true}, // a '*' in the string is a character like any other
		{"a?b", "a*b", true},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// The byte matcher that ASCII input takes must agree with the rune matcher
// the rest takes, with and without case folding.
func TestGlobOnBytesAgreesWithRunes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		str := rapid.StringOf(rapid.SampledFrom([]rune("aAbB*?/")))
		pattern, s, fold := str.Draw(t, "pattern"), str.Draw(t, "s"), rapid.Bool().Draw(t, "fold")
		p, q := pattern, s
		if fold {
			p, q = strings.ToLower(p), strings.ToLower(q)
		}
		want := globSeq([]rune(p), []rune(q), func(a, b rune) bool { return a == b })
		if got := glob(pattern, s, fold); got != want {
			t.Fatalf("glob(%q, %q, fold=%v) = %v, the rune matcher says %v", pattern, s, fold, got, want)
		}
	})
}

func TestAllows(t *testing.T) {
	const doc = `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::b/raw/*","arn:aws:s3:::c/*"]},
		{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["raw/*"]}}},
		{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::c"},
		{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::c/secret/*"},
		{"Effect":"Allow","Action":"S3:PutObject","Resource":"arn:aws:s3:::d/*","Condition":{"StringEquals":{"s3:x-amz-acl":"private"}}}
	]}`
	p, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"object under the prefix is readable", Request{"s3:GetObject", "arn:aws:s3:::b/raw/x", nil}, true},
		{"object outside the prefix is not", Request{"s3:GetObject", "arn:aws:s3:::b/other/x", nil}, false},
		{"action case is ignored", Request{"S3:getobject", "arn:aws:s3:::b/raw/x", nil}, true},
		{"resource case matters", Request{"s3:GetObject", "arn:aws:s3:::B/raw/x", nil}, false},
		{"other action is denied", Request{"s3:PutObject", "arn:aws:s3:::b/raw/x", nil}, false},
		{"listing within the prefix is allowed", Request{"s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "raw/2024/"}}, true},
		{"listing outside the prefix is denied", Request{"s3:ListBucket", "arn:aws:s3:::b", map[string]string{"s3:prefix": "ra"}}, false},
		{"listing without a prefix is denied when a condition needs one", Request{"s3:ListBucket", "arn:aws:s3:::b", nil}, false},
		{"unconditional listing is allowed with no prefix", Request{"s3:ListBucket", "arn:aws:s3:::c", nil}, true},
		{"explicit deny wins", Request{"s3:GetObject", "arn:aws:s3:::c/secret/k", nil}, false},
		{"StringEquals must match exactly", Request{"s3:PutObject", "arn:aws:s3:::d/k", map[string]string{"s3:x-amz-acl": "private"}}, true},
		{"StringEquals does not glob", Request{"s3:PutObject", "arn:aws:s3:::d/k", map[string]string{"s3:x-amz-acl": "public-read"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Allows(tt.req); got != tt.want {
				t.Errorf("Allows(%+v) = %v, want %v", tt.req, got, tt.want)
			}
		})
	}
}

func TestParseRejectsWhatItCannotEvaluate(t *testing.T) {
	tests := map[string]string{
		"NotAction is refused":         `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]}`,
		"NotResource is refused":       `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","NotResource":"*"}]}`,
		"unknown operator is refused":  `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3.4"}}}]}`,
		"old version is refused":       `{"Version":"2008-10-17","Statement":[]}`,
		"missing Action is refused":    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}`,
		"odd Effect is refused":        `{"Version":"2012-10-17","Statement":[{"Effect":"allow","Action":"s3:*","Resource":"*"}]}`,
		"trailing data is refused":     `{"Version":"2012-10-17","Statement":[]} {}`,
		"numeric resource is refused":  `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":1}]}`,
		"unknown top level is refused": `{"Version":"2012-10-17","Id":"x","Statement":[]}`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(doc); err == nil {
				t.Errorf("Parse accepted %s", doc)
			}
		})
	}
}

func TestParseAcceptsASingleStatementObjectAndEscapes(t *testing.T) {
	p, err := Parse(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/\u65e5/*"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allows(Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/" + strings.Repeat("日", 1) + "/k"}) {
		t.Error("escaped resource did not match its decoded form")
	}
}

// A boundary caps what the role's own policies allow and grants nothing
// itself: an Allow of everything in an inline policy reaches only what the
// boundary allows.
func TestARoleBoundaryCapsItsPoliciesAndGrantsNothing(t *testing.T) {
	const (
		ceiling  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::lake/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`
		allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
		denyOld  = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"alice"}}}]}`
		guarded  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::lake/secret/*"}]}`
	)
	session := mustParse(t, allowAll)
	tls := map[string]string{"aws:SecureTransport": "true", "aws:SourceIdentity": "bob"}
	read := Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k", Context: tls}
	for _, tc := range []struct {
		name     string
		boundary string
		policies []string
		req      Request
		want     bool
	}{
		{"within the boundary and the policies: allowed", ceiling, []string{ceiling}, read, true},
		{"an inline Allow beyond the boundary: another action is denied", ceiling, []string{ceiling, allowAll}, Request{Action: "s3:PutBucketPolicy", Resource: "arn:aws:s3:::lake", Context: tls}, false},
		{"an inline Allow beyond the boundary: another bucket is denied", ceiling, []string{ceiling, allowAll}, Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::other/k", Context: tls}, false},
		{"an inline Allow beyond the boundary: the boundary's condition still holds", ceiling, []string{allowAll}, Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k"}, false},
		{"without the boundary the same inline Allow reaches it", "", []string{ceiling, allowAll}, Request{Action: "s3:PutBucketPolicy", Resource: "arn:aws:s3:::lake", Context: tls}, true},
		{"the boundary alone grants nothing", ceiling, nil, read, false},
		{"a Deny of the role's policies still wins", ceiling, []string{ceiling, denyOld}, Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k", Context: map[string]string{"aws:SecureTransport": "true", "aws:SourceIdentity": "alice"}}, false},
		{"a Deny in the boundary wins", guarded, []string{allowAll}, Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/secret/k", Context: tls}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role, err := ParseRole(tc.boundary, tc.policies...)
			if err != nil {
				t.Fatal(err)
			}
			if got := role.Allows(session, tc.req); got != tc.want {
				t.Errorf("Allows(%+v) = %v, want %v", tc.req, got, tc.want)
			}
		})
	}
	if _, err := ParseRole(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]}`); err == nil {
		t.Error("ParseRole accepted a boundary it cannot evaluate")
	}
}

func mustParse(t *testing.T, doc string) Policy {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A negated condition holds when the key is absent and when the value
// equals none of those listed (IAM ORs nothing here: it is a NOR), so a
// Deny that spares a tag still denies an untagged session.
func TestStringNotEqualsHoldsForAnAbsentKeyAndAnyUnlistedValue(t *testing.T) {
	p := mustParse(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
		{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/t":["a","b"]}}}]}`)
	for _, tc := range []struct {
		name string
		ctx  map[string]string
		want bool
	}{
		{"first listed value: spared", map[string]string{"aws:PrincipalTag/t": "a"}, true},
		{"second listed value: spared", map[string]string{"aws:PrincipalTag/t": "b"}, true},
		{"unlisted value: denied", map[string]string{"aws:PrincipalTag/t": "c"}, false},
		{"empty value: denied", map[string]string{"aws:PrincipalTag/t": ""}, false},
		{"absent key: denied", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Allows(Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k", Context: tc.ctx}); got != tc.want {
				t.Errorf("Allows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNullHoldsForAnAbsentKeyOnlyWhenTrue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		ctx   map[string]string
		want  bool
	}{
		{"true and absent: denied", "true", nil, false},
		{"true and present: allowed", "true", map[string]string{"aws:PrincipalTag/t": "a"}, true},
		{"true and present but empty: allowed", "true", map[string]string{"aws:PrincipalTag/t": ""}, true},
		{"false and present: denied", "false", map[string]string{"aws:PrincipalTag/t": "a"}, false},
		{"false and absent: allowed", "false", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
				{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:PrincipalTag/t":"`+tc.value+`"}}}]}`)
			if got := p.Allows(Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k", Context: tc.ctx}); got != tc.want {
				t.Errorf("Allows = %v, want %v", got, tc.want)
			}
		})
	}
}

// A statement bounded with DateLessThan on aws:CurrentTime (the compiler's
// bound of a time-limited grant) matches strictly before the instant only,
// whatever offset either side is written with; without the key it fails.
func TestDateLessThanOnCurrentTime(t *testing.T) {
	p, err := Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",` +
		`"Condition":{"StringLike":{"s3:prefix":"x*"},"DateLessThan":{"aws:CurrentTime":"2026-12-31T18:00:00Z"}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	req := func(now string) Request {
		ctx := map[string]string{"s3:prefix": "x"}
		if now != "" {
			ctx["aws:CurrentTime"] = now
		}
		return Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k", Context: ctx}
	}
	for _, tt := range []struct {
		name, now string
		want      bool
	}{
		{"allowed a second before", "2026-12-31T17:59:59Z", true},
		{"allowed before, written with an offset", "2026-12-31T18:59:59+01:00", true},
		{"denied at the instant", "2026-12-31T18:00:00Z", false},
		{"denied at the instant, written with an offset", "2026-12-31T13:00:00-05:00", false},
		{"denied after", "2027-01-01T00:00:00Z", false},
		{"denied without the time", "", false},
		{"denied with an unreadable time", "yesterday", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Allows(req(tt.now)); got != tt.want {
				t.Errorf("Allows at %q = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
}
