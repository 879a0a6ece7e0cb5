package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// answerOf builds a parsed answer whose set i holds the grants specs[i]:
// "bucket", "bucket/folder/" or either with ":write".
func answerOf(t interface{ Fatalf(string, ...any) }, specs ...[]string) *Answer {
	exp := time.Date(2030, 1, 1, 0, 15, 0, 0, time.UTC)
	a := Answer{UserID: "u", PolicyVersion: "v1", Expiration: exp}
	for i, set := range specs {
		cs := CredentialSet{AccessKeyID: fmt.Sprintf("KEY%d", i), SecretAccessKey: "s", SessionToken: "t", Expiration: exp}
		for _, spec := range set {
			cs.Grants = append(cs.Grants, grantOf(spec))
		}
		a.CredentialSets = append(a.CredentialSets, cs)
	}
	body, err := json.Marshal(a)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	parsed, err := parseAnswer(body)
	if err != nil {
		t.Fatalf("parse %s: %v", body, err)
	}
	return parsed
}

func grantOf(spec string) Grant {
	g := Grant{Access: Read, Projects: []string{"p"}}
	if s, ok := strings.CutSuffix(spec, ":write"); ok {
		spec, g.Access = s, Write
	}
	g.Bucket, g.Prefix, _ = strings.Cut(spec, "/")
	return g
}

func TestTargetsRouteToTheSetThatCoversThem(t *testing.T) {
	a := answerOf(t,
		[]string{"alpha", "beta/raw/:write", "beta/cur/"},
		[]string{"gamma:write", "delta/x/", "beta/raw/deep/"},
		[]string{"delta/y/:write", "chunked/a/:write", "eps/a/", "eps/b/:write"},
		[]string{"chunked/b/:write"},
	)
	tests := []struct {
		name    string
		target  Target
		wantSet int // -1: no access; -2: ambiguous
	}{
		{"whole-bucket grant covers the bucket", Target{Bucket: "alpha"}, 0},
		{"whole-bucket grant covers any key", Target{Bucket: "alpha", Key: "any/key"}, 0},
		{"read grant does not cover write", Target{Bucket: "alpha", Key: "k", Access: Write}, -1},
		{"write grant covers read", Target{Bucket: "gamma", Key: "k"}, 1},
		{"write grant covers write", Target{Bucket: "gamma", Access: Write}, 1},
		{"folder grant covers a key under it", Target{Bucket: "beta", Key: "raw/2024/x.csv", Access: Write}, 0},
		{"folder grant covers the folder itself", Target{Bucket: "beta", Key: "raw/"}, 0},
		{"folder grant does not cover a sibling", Target{Bucket: "beta", Key: "rawdata/x"}, -1},
		{"folder grant does not cover the bare folder name", Target{Bucket: "beta", Key: "raw"}, -1},
		{"the most specific folder wins", Target{Bucket: "beta", Key: "raw/deep/x"}, 1},
		{"a deeper read folder does not serve a write", Target{Bucket: "beta", Key: "raw/deep/x", Access: Write}, 0},
		{"a bucket whose folders are in one set routes to it", Target{Bucket: "eps"}, 2},
		{"folders of a bucket in two sets route by key", Target{Bucket: "delta", Key: "y/1", Access: Write}, 2},
		{"folders of a bucket in two sets, read by key", Target{Bucket: "delta", Key: "x/1"}, 1},
		{"folders of a bucket in two sets need a key", Target{Bucket: "delta"}, -2},
		{"write on a bucket whose write folder is in one set", Target{Bucket: "delta", Access: Write}, 2},
		{"chunks of one bucket route by key", Target{Bucket: "chunked", Key: "b/1", Access: Write}, 3},
		{"an unknown bucket is no access", Target{Bucket: "omega"}, -1},
		{"no bucket with several sets is ambiguous", Target{}, -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := a.SetFor(tt.target)
			switch tt.wantSet {
			case -1:
				var ae *AccessError
				if !errors.As(err, &ae) || !errors.Is(err, ErrNoAccess) || ae.Target != tt.target {
					t.Fatalf("SetFor = %v, %v; want an AccessError for %v", set, err, tt.target)
				}
				if tt.target.Bucket != "" && !strings.Contains(err.Error(), tt.target.Bucket) {
					t.Errorf("error %q does not name the bucket", err)
				}
			case -2:
				if !errors.Is(err, ErrAmbiguousTarget) {
					t.Fatalf("SetFor = %v, %v; want ErrAmbiguousTarget", set, err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if want := &a.CredentialSets[tt.wantSet]; set != want {
					t.Errorf("SetFor(%v) = set %s, want %s", tt.target, set.AccessKeyID, want.AccessKeyID)
				}
			}
		})
	}
}

func TestTheOnlySetServesATargetWithoutBucket(t *testing.T) {
	a := answerOf(t, []string{"alpha", "beta/x/"})
	set, err := a.SetFor(Target{Project: "p"})
	if err != nil || set.AccessKeyID != "KEY0" {
		t.Fatalf("SetFor = %v, %v", set, err)
	}
}

// Routing is sound and complete: whatever set it picks has a grant that
// covers the target, and when some grant covers a key, a set is picked.
func TestRoutingIsSoundAndComplete(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		buckets := []string{"a", "b", "c"}
		folders := []string{"", "x/", "x/y/", "z/"}
		nsets := rapid.IntRange(1, 4).Draw(t, "sets")
		specs := make([][]string, nsets)
		for i := range nsets {
			n := rapid.IntRange(1, 4).Draw(t, "grants")
			for range n {
				spec := rapid.SampledFrom(buckets).Draw(t, "bucket") + "/" + rapid.SampledFrom(folders).Draw(t, "folder")
				if rapid.Bool().Draw(t, "write") {
					spec += ":write"
				}
				specs[i] = append(specs[i], strings.TrimSuffix(spec, "/"))
			}
		}
		a := answerOf(t, specs...)
		target := Target{
			Bucket: rapid.SampledFrom(buckets).Draw(t, "target bucket"),
			Key:    rapid.SampledFrom([]string{"", "k", "x/k", "x/y/k", "z/", "xx"}).Draw(t, "key"),
			Access: rapid.SampledFrom([]Access{"", Read, Write}).Draw(t, "access"),
		}
		set, err := a.SetFor(target)
		// An Answer built by hand (no index) routes the same.
		byHand := *a
		byHand.byBucket = nil
		if set2, err2 := byHand.SetFor(target); (err == nil) != (err2 == nil) || (err == nil && set.AccessKeyID != set2.AccessKeyID) {
			t.Fatalf("SetFor(%v) on a hand-built answer = %v, %v; parsed %v, %v", target, set2, err2, set, err)
		}
		covers := func(s *CredentialSet) bool {
			for _, g := range s.Grants {
				if g.Covers(target.Bucket, target.Key, target.access()) ||
					(target.Key == "" && g.Bucket == target.Bucket && g.Access.Covers(target.access())) {
					return true
				}
			}
			return false
		}
		anyCovers := false
		for i := range a.CredentialSets {
			for _, g := range a.CredentialSets[i].Grants {
				anyCovers = anyCovers || g.Covers(target.Bucket, target.Key, target.access())
			}
		}
		switch {
		case err == nil && !covers(set):
			t.Fatalf("SetFor(%v) picked set %s, which covers nothing of it: %+v", target, set.AccessKeyID, set.Grants)
		case err != nil && anyCovers:
			t.Fatalf("SetFor(%v) = %v although a grant covers it", target, err)
		case err != nil && !errors.Is(err, ErrNoAccess) && !errors.Is(err, ErrAmbiguousTarget):
			t.Fatalf("SetFor(%v): unexpected error %v", target, err)
		}
	})
}

func TestFolderPrefixesAreNormalized(t *testing.T) {
	a := answerOf(t, []string{"b/raw"})
	if got := a.CredentialSets[0].Grants[0].Prefix; got != "raw/" {
		t.Errorf("prefix %q, want raw/", got)
	}
	if _, err := a.SetFor(Target{Bucket: "b", Key: "rawdata/x"}); !errors.Is(err, ErrNoAccess) {
		t.Errorf("a grant on folder raw reaches rawdata/x: %v", err)
	}
}

func TestCloneSharesNothingWithTheCache(t *testing.T) {
	a := answerOf(t, []string{"b/raw/"})
	c := a.clone()
	c.CredentialSets[0].AccessKeyID = "changed"
	c.CredentialSets[0].Grants[0].Bucket = "changed"
	c.CredentialSets[0].Grants[0].Projects[0] = "changed"
	if a.CredentialSets[0].AccessKeyID != "KEY0" || a.CredentialSets[0].Grants[0].Bucket != "b" || a.CredentialSets[0].Grants[0].Projects[0] != "p" {
		t.Errorf("changing a clone changed the original: %+v", a.CredentialSets[0])
	}
}
