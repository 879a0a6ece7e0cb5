package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// answer is a 200 body of the credential endpoint, as far as the checks
// need it.
type answer struct {
	UserID         string          `json:"userId"`
	PolicyVersion  string          `json:"policyVersion"`
	CredentialSets []credentialSet `json:"credentialSets"`
}

type credentialSet struct {
	AccessKeyID string         `json:"accessKeyId"`
	Grants      []broker.Grant `json:"grants"`
}

// places lists every grant of the answer, sorted.
func (a answer) places() []broker.Place {
	var out []broker.Place
	for _, s := range a.CredentialSets {
		for _, g := range s.Grants {
			out = append(out, g.Place())
		}
	}
	sortPlaces(out)
	return out
}

// wellFormed checks what the contract promises of every 200.
func (a answer) wellFormed(userID string) error {
	switch {
	case a.UserID != userID:
		return fmt.Errorf("answer for user %q to a request of %q", a.UserID, userID)
	case a.PolicyVersion == "" || len(a.CredentialSets) == 0:
		return fmt.Errorf("answer without a policy version or credential sets")
	}
	for i, s := range a.CredentialSets {
		if s.AccessKeyID == "" || len(s.Grants) == 0 {
			return fmt.Errorf("credential set %d without an access key or grants", i)
		}
	}
	return nil
}

// policyItem is one strongly consistent read of a user's policy item, in
// the layout the projector writes (internal/ddbstore/policy.go).
type policyItem struct {
	found     bool
	version   string
	updatedAt string
	grants    []broker.Place
}

// readItem reads user sub's policy item straight from moto.
func readItem(ctx context.Context, ddb *dynamodb.Client, table, sub string) (policyItem, error) {
	out, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: broker.UserKeyPrefix + sub},
			"sk": &types.AttributeValueMemberS{Value: "POLICY"},
		},
		ProjectionExpression:     aws.String("#v, #u, #d"),
		ExpressionAttributeNames: map[string]string{"#v": "version", "#u": "updatedAt", "#d": "doc"},
	})
	if err != nil || len(out.Item) == 0 {
		return policyItem{}, err
	}
	s := func(name string) string {
		v, _ := out.Item[name].(*types.AttributeValueMemberS)
		if v == nil {
			return ""
		}
		return v.Value
	}
	it := policyItem{found: true, version: s("version"), updatedAt: s("updatedAt")}
	if doc := s("doc"); doc != "" {
		var d struct {
			Grants []broker.Grant `json:"grants"`
		}
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			return policyItem{}, fmt.Errorf("policy item of %s: %w", sub, err)
		}
		for _, g := range d.Grants {
			it.grants = append(it.grants, g.Place())
		}
	}
	return it, nil
}

// unchanged reports whether two reads saw the same commit of the item.
// Every commit of the projector writes a new updatedAt (the time of its
// recompute), so equal updatedAt and version mean no commit in between,
// and the item held the same grants the whole time.
func unchanged(before, after policyItem) bool {
	return before.found && after.found && before.version == after.version && before.updatedAt == after.updatedAt
}

// staleness compares a 200 with the user's policy item read just before
// the request was sent and just after its answer arrived. When the item
// did not change in between, it held exactly before's grants while the
// request was in flight, so the answer must carry before's version and
// no grant outside before's: anything else was served from something
// older than the item (a stale cache after a narrowing). decided is false
// when the item changed: nothing can then be concluded safely.
func staleness(before, after policyItem, a answer) (stale []broker.Place, wrongVersion, decided bool) {
	if !unchanged(before, after) {
		return nil, false, false
	}
	for _, g := range a.places() {
		if !holds(before.grants, g) {
			stale = append(stale, g)
		}
	}
	return stale, a.PolicyVersion != before.version, true
}

// holds reports whether grants reach g: the same place at g's access or
// more.
func holds(grants []broker.Place, g broker.Place) bool {
	for _, h := range grants {
		if h.Bucket == g.Bucket && h.Prefix == g.Prefix && h.Access.Covers(g.Access) {
			return true
		}
	}
	return false
}

// overGrants returns the grants of an answer that the user was never
// granted.
func overGrants(a answer, everGranted func(broker.Place) bool) []broker.Place {
	var out []broker.Place
	for _, g := range a.places() {
		if !everGranted(g) {
			out = append(out, g)
		}
	}
	return out
}

// credentialProblems checks each set's access key against what STS was
// asked for when it was minted (seen by the proxy): minted through this
// stack, for this user, with a session policy that allows nothing beyond
// the grants the set lists. probes are the places to try, beyond the
// set's own.
func credentialProblems(a answer, mintOf func(string) (mint, bool), probes []broker.Place) []string {
	var out []string
	for i, s := range a.CredentialSets {
		m, ok := mintOf(s.AccessKeyID)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("set %d: access key %s was not minted by an AssumeRole the proxy saw", i, s.AccessKeyID))
			continue
		case m.User != a.UserID:
			out = append(out, fmt.Sprintf("set %d: access key %s was minted for user %q", i, s.AccessKeyID, m.User))
			continue
		}
		pol, err := iameval.Parse(m.Policy)
		if err != nil {
			out = append(out, fmt.Sprintf("set %d: session policy of %s: %v", i, s.AccessKeyID, err))
			continue
		}
		listed := make([]broker.Place, 0, len(s.Grants))
		for _, g := range s.Grants {
			listed = append(listed, g.Place())
		}
		for _, r := range requests(append(listed, probes...)) {
			if pol.Allows(r) && !allows(listed, r) {
				out = append(out, fmt.Sprintf("set %d: access key %s allows %s on %s beyond its grants", i, s.AccessKeyID, r.Action, r.Resource))
				break
			}
		}
	}
	return out
}

var (
	readActions  = []string{"s3:GetObject"}
	writeActions = []string{"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
)

// requests are S3 calls inside and just outside each place: every object
// action on a key in it and on a key beside it, and a listing of it and
// of a sibling folder.
func requests(places []broker.Place) []iameval.Request {
	var out []iameval.Request
	for _, p := range places {
		for _, key := range []string{p.Prefix + "probe.txt", "elsewhere/probe.txt"} {
			for _, act := range append(readActions, writeActions...) {
				out = append(out, iameval.Request{Action: act, Resource: "arn:aws:s3:::" + p.Bucket + "/" + key})
			}
		}
		for _, prefix := range []string{p.Prefix, "elsewhere/"} {
			out = append(out, iameval.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::" + p.Bucket,
				Context: map[string]string{"s3:prefix": prefix}})
		}
	}
	return out
}

// allows is what the contract lets grants do (docs/contract.md "Access levels"):
// read is GetObject and ListBucket, write adds PutObject, DeleteObject and
// AbortMultipartUpload; with a folder, objects under it and listings
// within it only.
func allows(grants []broker.Place, r iameval.Request) bool {
	for _, g := range grants {
		if r.Action == "s3:ListBucket" {
			if r.Resource == "arn:aws:s3:::"+g.Bucket && strings.HasPrefix(r.Context["s3:prefix"], g.Prefix) {
				return true
			}
			continue
		}
		if !strings.HasPrefix(r.Resource, "arn:aws:s3:::"+g.Bucket+"/"+g.Prefix) {
			continue
		}
		if r.Action == "s3:GetObject" || (g.Access == broker.Write && isWrite(r.Action)) {
			return true
		}
	}
	return false
}

func isWrite(action string) bool { return slices.Contains(writeActions, action) }
