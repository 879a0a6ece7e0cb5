//go:build integration

package localstack_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// session is a set of credentials as IAM sees it: who, issued when, with
// which session policy and cutoff tag.
type session struct {
	user   string
	issued time.Time
	policy iameval.Policy
	tag    string
	at     time.Time // the instant of the requests judged; zero: now
}

// sessionOf fetches the user's credentials and returns the session of the
// set that holds bucket, with the session policy moto's STS received and
// the cutoff tag of the policy item it came from (moto keeps no tags; the
// item, read after the answer with the answer's version, says which).
func sessionOf(t *testing.T, st *localstack.Stack, token, user, bucket string) session {
	t.Helper()
	a := until(t, st, token, func(a answer) bool { return a.status == http.StatusOK })
	version, cutoff := policyItem(t, st, user)
	if version != a.body.PolicyVersion {
		t.Fatalf("the item changed under the test: version %s, the answer's %s", version, a.body.PolicyVersion)
	}
	roles := map[string]string{}
	var assumed []struct {
		AccessKeyID string `json:"access_key_id"`
		Policy      string `json:"policy"`
	}
	if err := json.Unmarshal(mototest.Data(t, "sts")["AssumedRole"], &assumed); err != nil {
		t.Fatal(err)
	}
	for _, r := range assumed {
		roles[r.AccessKeyID] = r.Policy
	}
	for _, set := range a.body.CredentialSets {
		for _, g := range set.Grants {
			if g.Bucket != bucket {
				continue
			}
			exp, err := time.Parse(time.RFC3339, set.Expiration)
			if err != nil {
				t.Fatal(err)
			}
			pol, err := iameval.Parse(roles[set.AccessKeyID])
			if err != nil {
				t.Fatalf("session policy of %s: %v", set.AccessKeyID, err)
			}
			return session{user: user, issued: exp.Add(-credentials.DefaultSessionDuration), policy: pol, tag: broker.CutoffTag(user, cutoff)}
		}
	}
	t.Fatalf("no set of %s holds %s: %+v", user, bucket, a.body)
	return session{}
}

// policyItem reads the user's policy version and revocation cutoff.
func policyItem(t *testing.T, st *localstack.Stack, user string) (string, time.Time) {
	t.Helper()
	out, err := newClient(st).ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(st.Info.PolicyTable), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": s("USER#" + user), "sk": s("POLICY")}})
	if err != nil {
		t.Fatal(err)
	}
	var cutoff time.Time
	if n, ok := out.Item["revokedBefore"].(*types.AttributeValueMemberN); ok {
		ms, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		cutoff = time.UnixMilli(ms).UTC()
	}
	version, _ := out.Item["version"].(*types.AttributeValueMemberS)
	if version == nil {
		t.Fatalf("%s's item has no version: %v", user, out.Item)
	}
	return version.Value, cutoff
}

// baseRole returns the base role as IAM holds it now: its boundary, the
// ceiling attached and the revoker's inline policy.
func baseRole(t *testing.T, st *localstack.Stack) iameval.Role {
	t.Helper()
	name, err := iamrole.NameFromARN(st.Info.BaseRoleARN)
	if err != nil {
		t.Fatal(err)
	}
	role := mototest.Role(t, name).Eval(t)
	if role.Boundary == nil {
		t.Fatal("the base role has no permissions boundary")
	}
	return role
}

// contractActions are every action a session may have been granted.
var contractActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListBucket"}

// reaches reports whether the session may make any of the contract's calls
// on bucket, under the base role's policies and boundary.
func (s session) reaches(role iameval.Role, bucket string) bool {
	for _, action := range contractActions {
		resource := "arn:aws:s3:::" + bucket + "/team-a/file"
		if action == "s3:ListBucket" {
			resource = "arn:aws:s3:::" + bucket
		}
		ctx := map[string]string{
			"aws:SourceIdentity": s.user, "aws:TokenIssueTime": s.issued.UTC().Truncate(time.Second).Format(time.RFC3339),
			"aws:SecureTransport": "true", "s3:ResourceAccount": samtemplate.LocalAccountID, "s3:prefix": "team-a/",
			"aws:CurrentTime": cmp.Or(s.at, time.Now()).UTC().Format(time.RFC3339),
		}
		if s.tag != "" {
			ctx["aws:PrincipalTag/"+broker.UserTagKey] = broker.UserTag(s.user)
			ctx["aws:PrincipalTag/"+broker.CutoffTagKey] = s.tag
		}
		if role.Allows(s.policy, iameval.Request{Action: action, Resource: resource, Context: ctx}) {
			return true
		}
	}
	return false
}

func (c *client) put(t testing.TB, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := c.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(c.st.Info.MembershipTable), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func (c *client) del(t testing.TB, pk, sk string) {
	t.Helper()
	_, err := c.ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(c.st.Info.MembershipTable),
		Key: map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}})
	if err != nil {
		t.Fatal(err)
	}
}

type client struct {
	st  *localstack.Stack
	ddb *dynamodb.Client
}

func newClient(st *localstack.Stack) *client {
	return &client{st: st, ddb: dynamodb.NewFromConfig(awsconfig.Local(st.Info.Region, st.Info.AWSEndpoint))}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// denied waits until the base role's policies deny the session, and returns
// how long that took from since.
func denied(t *testing.T, st *localstack.Stack, old session, bucket string, since time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for old.reaches(baseRole(t, st), bucket) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's old session still reaches %s 20 s after the change", old.user, bucket)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(since)
}

// When a user leaves a project, the sessions issued to that user before
// stop working for every action, within seconds, through the base role's
// policies; sessions issued after reach the remaining grants; another
// user's sessions are untouched. End to end: the real stream, the
// projector, the revoker, the bus and IAM in moto.
func TestANarrowingRevokesTheUsersEarlierSessionsOnly(t *testing.T) {
	st := start(t, true)
	c := newClient(st)
	demo := st.Demo.UserID
	// The demo user also reads project "extra"; a second user shares demo.
	c.put(t, map[string]types.AttributeValue{"pk": s("USER#" + demo), "sk": s("PROJECT#extra")})
	c.put(t, map[string]types.AttributeValue{"pk": s("PROJECT#extra"), "sk": s("BUCKET#extra-bucket")})
	token := signIn(t, st, st.Demo.Username, st.Demo.Password)
	until(t, st, token, func(a answer) bool { return slices.Contains(a.places(), "extra-bucket/:read") })
	old := sessionOf(t, st, token, demo, "demo-raw")
	const other = "c0ffee00-0000-4000-8000-000000000000"
	bystander := session{user: other, issued: old.issued, policy: old.policy, tag: broker.CutoffTag(other, time.Time{})}
	if !old.reaches(baseRole(t, st), "demo-raw") {
		t.Fatal("setup: the demo user's session does not reach demo-raw")
	}

	removed := time.Now()
	c.del(t, "USER#"+demo, "PROJECT#demo")
	took := denied(t, st, old, "demo-raw", removed)
	t.Logf("revoked %v after the membership was deleted", took)

	role := baseRole(t, st)
	for _, b := range []string{"demo-raw", "demo-curated", "extra-bucket"} {
		if old.reaches(role, b) {
			t.Errorf("the old session still reaches %s", b)
		}
	}
	if !bystander.reaches(role, "demo-raw") {
		t.Error("another user's old session was revoked too")
	}

	// The next credentials come at once, before the cutoff: their tag is
	// what keeps them working.
	fresh := sessionOf(t, st, token, demo, "extra-bucket")
	role = baseRole(t, st)
	_, cutoff := policyItem(t, st, demo)
	t.Logf("fresh session issued %v, cutoff %v", fresh.issued, cutoff)
	if !fresh.reaches(role, "extra-bucket") {
		t.Errorf("the session issued after the revocation (at %v) is denied its remaining grant", fresh.issued)
	}
	if untagged := (session{user: demo, issued: fresh.issued, policy: fresh.policy}); fresh.issued.Before(cutoff.Truncate(time.Second)) && untagged.reaches(role, "extra-bucket") {
		t.Error("an untagged session issued before the cutoff reaches the remaining grant: the deny spares more than the cutoff's tag")
	}
	if fresh.reaches(role, "demo-raw") {
		t.Error("the new session reaches the removed bucket")
	}
}

// BenchmarkRevocation measures, on the local stack, the time from deleting
// a membership to the deny being in the base role's policies, over b.N
// users (docs/benchmarks.md "Revocation (issue 11)").
func BenchmarkRevocation(b *testing.B) {
	st := start(b, true)
	c := newClient(st)
	var took []time.Duration
	for i := range b.N {
		user := fmt.Sprintf("5e1f0000-0000-4000-8000-%012d", i)
		c.put(b, map[string]types.AttributeValue{"pk": s("USER#" + user), "sk": s("PROJECT#demo"), "role": s("read")})
		waitItem(b, c, user, true)
		removed := time.Now()
		c.del(b, "USER#"+user, "PROJECT#demo")
		for !inDenyList(b, st, user) {
			if time.Since(removed) > 20*time.Second {
				b.Fatalf("%s not in the base role's deny list 20 s after the delete", user)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took = append(took, time.Since(removed))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[(len(took)*99+99)/100-1].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
}

func waitItem(b *testing.B, c *client, user string, grants bool) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, err := c.ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(c.st.Info.PolicyTable), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": s("USER#" + user), "sk": s("POLICY")}})
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := out.Item["doc"]; ok == grants {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s's item never granted %v", user, grants)
}

func inDenyList(b *testing.B, st *localstack.Stack, user string) bool {
	doc, err := (&iamrole.Role{Client: iam.NewFromConfig(mototest.Config(b)), ARN: st.Info.BaseRoleARN}).Current(context.Background(), 0)
	if err != nil {
		b.Fatal(err)
	}
	// The users here are narrowed once: the sessions of no cutoff go.
	return strings.Contains(doc, `"`+broker.CutoffTag(user, time.Time{})+`"`)
}
