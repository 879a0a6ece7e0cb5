package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidateBucketName(t *testing.T) {
	valid := []string{"abc", "my-bucket", "my.bucket.2024", "a1b", strings.Repeat("a", 63), "192.168.1.1a", "1-2-3"}
	invalid := map[string]string{
		"too short":              "ab",
		"too long":               strings.Repeat("a", 64),
		"uppercase":              "MyBucket",
		"underscore":             "my_bucket",
		"wildcard star":          "my*bucket",
		"wildcard question mark": "my?bucket",
		"policy variable":        "${aws:username}",
		"starts with a hyphen":   "-bucket",
		"ends with a dot":        "bucket.",
		"double dot":             "my..bucket",
		"IPv4 shaped":            "192.168.5.4",
		"IPv4 with leading zero": "192.168.05.4",
		"slash":                  "bucket/key",
		"space":                  "my bucket",
		"non-ASCII":              "bücket",
		"reserved xn-- prefix":   "xn--bucket",
		"reserved -s3alias":      "bucket-s3alias",
		"reserved --ol-s3":       "bucket--ol-s3",
		"empty":                  "",
	}
	for _, name := range valid {
		if err := ValidateBucketName(name); err != nil {
			t.Errorf("%q rejected: %v", name, err)
		}
	}
	for why, name := range invalid {
		err := ValidateBucketName(name)
		if KindOf(err) != Invalid || MessageOf(err) == "" {
			t.Errorf("%s (%q): err = %v, want an Invalid error with a message", why, name, err)
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	ok := map[string]string{
		"":                                "",
		"raw":                             "raw/",
		"raw/":                            "raw/",
		"raw/2024":                        "raw/2024/",
		"raw/2024/":                       "raw/2024/",
		"a b/c":                           "a b/c/",
		"日本":                              "日本/",
		`q"uote`:                          `q"uote/`,
		"a//b":                            "a//b/",
		strings.Repeat("x", MaxPrefixLen): strings.Repeat("x", MaxPrefixLen) + "/",
	}
	for in, want := range ok {
		got, err := NormalizePrefix(in)
		if err != nil || got != want {
			t.Errorf("NormalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"star":              "raw/*",
		"question mark":     "raw?",
		"dollar":            "${aws:username}",
		"leading slash":     "/raw",
		"NUL":               "a\x00b",
		"newline":           "a\nb",
		"DEL":               "a\x7fb",
		"C1 control":        "a\u0085b",
		"invalid UTF-8":     "a\xffb",
		"too long":          strings.Repeat("x", MaxPrefixLen+1),
		"too long in runes": strings.Repeat("日", MaxPrefixLen+1),
	}
	for why, in := range bad {
		if got, err := NormalizePrefix(in); KindOf(err) != Invalid {
			t.Errorf("%s: NormalizePrefix(%q) = %q, %v; want Invalid", why, in, got, err)
		}
	}
}

func TestValidateIdentifiers(t *testing.T) {
	for _, id := range []string{"p", "proj-1", "a.b_c:d@e=f+g", strings.Repeat("p", 128)} {
		if err := ValidateProjectID(id); err != nil {
			t.Errorf("project %q rejected: %v", id, err)
		}
	}
	for _, id := range []string{"", "p 1", "p/1", "p#1", "p*", strings.Repeat("p", 129), "日本"} {
		if err := ValidateProjectID(id); KindOf(err) != Invalid {
			t.Errorf("project %q accepted", id)
		}
	}
	for _, id := range []string{"3f8e2a5c-0b6d-4c1e-9a7f-2d4b6c8e0a1b", "ab", "user@example.com", "a_b+c=d,e.f"} {
		if err := ValidateUserID(id); err != nil {
			t.Errorf("user %q rejected: %v", id, err)
		}
	}
	for _, id := range []string{"", "a", "a b", "a:b", "a/b", strings.Repeat("u", 65), "a#b"} {
		if err := ValidateUserID(id); KindOf(err) != Invalid {
			t.Errorf("user %q accepted", id)
		}
	}
}

func TestParseSourceItems(t *testing.T) {
	tests := []struct {
		name    string
		item    SourceItem
		want    ParsedItem
		invalid bool
	}{
		{
			name: "membership without role is read",
			item: SourceItem{PK: "USER#alice", SK: "PROJECT#p1"},
			want: ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}, Membership: Membership{UserID: "alice", ProjectID: "p1", Access: Read}},
		},
		{
			name: "membership with write role",
			item: SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: StringAttr("write")},
			want: ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}, Membership: Membership{UserID: "alice", ProjectID: "p1", Access: Write}},
		},
		{
			name: "membership with an expiry is bounded, in UTC to the second",
			item: SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: StringAttr("2026-12-31T19:00:00.75+01:00")},
			want: ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"},
				Membership: Membership{UserID: "alice", ProjectID: "p1", Access: Read, ExpiresAt: time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)}},
		},
		{
			name: "membership with a past expiry is valid",
			item: SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: StringAttr("write"), ExpiresAt: StringAttr("2001-01-01T00:00:00Z")},
			want: ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"},
				Membership: Membership{UserID: "alice", ProjectID: "p1", Access: Write, ExpiresAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}},
		},
		{
			name:    "membership with an expiry without offset is invalid",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: StringAttr("2026-12-31T18:00:00")},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with a date-only expiry is invalid",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: StringAttr("2026-12-31")},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with an empty expiry is invalid, not unbounded",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: StringAttr("")},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with a numeric expiry is invalid",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: Attr{Present: true, Type: "N"}},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with a NULL expiry is invalid, not unbounded",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: Attr{Present: true, Type: "NULL"}},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with an unknown role is invalid but names its user",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: StringAttr("admin")},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with a numeric role is invalid",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: Attr{Present: true, Type: "N"}},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with a NULL role is invalid, not read",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: Attr{Present: true, Type: "NULL"}},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice", ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "bucket with a NULL prefix is invalid, not the whole bucket",
			item:    SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: Attr{Present: true, Type: "NULL"}},
			want:    ParsedItem{Ref: Ref{Kind: BucketRecord, ProjectID: "p1", Bucket: "lake"}},
			invalid: true,
		},
		{
			name:    "bucket with an empty prefix is invalid, not the whole bucket",
			item:    SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: StringAttr("")},
			want:    ParsedItem{Ref: Ref{Kind: BucketRecord, ProjectID: "p1", Bucket: "lake"}},
			invalid: true,
		},
		{
			name: "bucket with a prefix is normalized",
			item: SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: StringAttr("raw/2024")},
			want: ParsedItem{Ref: Ref{Kind: BucketRecord, ProjectID: "p1", Bucket: "lake"}, Bucket: ProjectBucket{"p1", "lake", "raw/2024/"}},
		},
		{
			name:    "bucket with a wildcard prefix is invalid but names its project",
			item:    SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: StringAttr("*")},
			want:    ParsedItem{Ref: Ref{Kind: BucketRecord, ProjectID: "p1", Bucket: "lake"}},
			invalid: true,
		},
		{
			name:    "bucket with an invalid name is invalid but names its project",
			item:    SourceItem{PK: "PROJECT#p1", SK: "BUCKET#Lake"},
			want:    ParsedItem{Ref: Ref{Kind: BucketRecord, ProjectID: "p1"}},
			invalid: true,
		},
		{
			name:    "membership with an invalid project names its user only",
			item:    SourceItem{PK: "USER#alice", SK: "PROJECT#p 1"},
			want:    ParsedItem{Ref: Ref{Kind: MembershipRecord, UserID: "alice"}},
			invalid: true,
		},
		{
			name: "other key shapes are ignored",
			item: SourceItem{PK: "ORG#x", SK: "PROJECT#p1"},
			want: ParsedItem{Ref: Ref{Kind: Ignored}},
		},
		{
			name: "a user's other items are ignored",
			item: SourceItem{PK: "USER#alice", SK: "PROFILE"},
			want: ParsedItem{Ref: Ref{Kind: Ignored}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.item.Parse()
			if (err != nil) != tt.invalid || (err != nil && KindOf(err) != Invalid) {
				t.Fatalf("err = %v, invalid = %v", err, tt.invalid)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	base := Errorf(Transient, "read", "throttled")
	wrapped := Wrap(Other, "recompute", base)
	if KindOf(wrapped) != Transient {
		t.Errorf("Other should look through to Transient, got %v", KindOf(wrapped))
	}
	if KindOf(Wrap(Internal, "x", base)) != Internal {
		t.Error("an explicit kind must win over the wrapped one")
	}
	if KindOf(errString("plain")) != Internal || KindOf(nil) != Other {
		t.Error("unclassified errors are Internal, nil is Other")
	}
	if MessageOf(wrapped) != "throttled" || !IsTransient(wrapped) {
		t.Errorf("message %q", MessageOf(wrapped))
	}
	if Wrap(Transient, "x", nil) != nil {
		t.Error("Wrap(nil) must be nil")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestSameContentSeesEveryPart(t *testing.T) {
	base := UserPolicy{
		Version:   "v1.a",
		Grants:    []Grant{{Bucket: "lake", Prefix: "raw/", Access: Read, Projects: []string{"p1"}}},
		Sets:      []PolicySet{{Policy: `{"Version":"2012-10-17"}`, Grants: []int{0}}},
		ByProject: map[string][]Place{"p1": {{Bucket: "lake", Prefix: "raw/", Access: Read}}},
	}
	clone := func(edit func(*UserPolicy)) UserPolicy {
		c := base
		c.Grants = []Grant{{Bucket: "lake", Prefix: "raw/", Access: Read, Projects: []string{"p1"}}}
		c.Sets = []PolicySet{{Policy: base.Sets[0].Policy, Grants: []int{0}}}
		c.ByProject = map[string][]Place{"p1": {{Bucket: "lake", Prefix: "raw/", Access: Read}}}
		edit(&c)
		return c
	}
	if !base.SameContent(clone(func(*UserPolicy) {})) {
		t.Fatal("equal policies compare different")
	}
	if !(UserPolicy{Grants: nil}).SameContent(UserPolicy{Grants: []Grant{}, ByProject: map[string][]Place{}}) {
		t.Error("nil and empty must compare equal (a tombstone read back)")
	}
	for name, edit := range map[string]func(*UserPolicy){
		"version":         func(c *UserPolicy) { c.Version = "v1.b" },
		"grant access":    func(c *UserPolicy) { c.Grants[0].Access = Write },
		"grant projects":  func(c *UserPolicy) { c.Grants[0].Projects = []string{"p2"} },
		"policy text":     func(c *UserPolicy) { c.Sets[0].Policy = `{"Version":"2012-10-17","Statement":[]}` },
		"set grants":      func(c *UserPolicy) { c.Sets[0].Grants = []int{1} },
		"project places":  func(c *UserPolicy) { c.ByProject["p1"][0].Prefix = "" },
		"grant expiry":    func(c *UserPolicy) { c.Grants[0].ExpiresAt = time.Unix(1e9, 0) },
		"project expiry":  func(c *UserPolicy) { c.Expires = map[string]time.Time{"p1": time.Unix(1e9, 0)} },
		"another project": func(c *UserPolicy) { c.ByProject["p2"] = nil },
	} {
		if base.SameContent(clone(edit)) {
			t.Errorf("a change of %s is not seen", name)
		}
	}
}
