//go:build integration

package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/testkit/fakeclock"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// These tests run the client against the whole local stack on moto: the
// real endpoint, projector, STS and Cognito.

// stack is a local stack and what a test needs to drive it.
type stack struct {
	*localstack.Stack
	idp    *cip.Client
	tables mototest.Tables
}

func startStack(t *testing.T) *stack {
	t.Helper()
	st := stacktest.Start(t, localstack.Options{Name: "client"})
	cfg := mototest.Config(t)
	return &stack{
		Stack:  st,
		idp:    cip.NewFromConfig(cfg),
		tables: mototest.Tables{DDB: dynamodb.NewFromConfig(cfg), Membership: st.Info.MembershipTable},
	}
}

// user creates a confirmed user with a permanent password; it returns its sub.
func (s *stack) user(t *testing.T, name, password string) string {
	t.Helper()
	return mototest.User(t, s.idp, s.Info.UserPoolID, name, password)
}

// signIn returns a token source signed in as name.
func (s *stack) signIn(t *testing.T, name, password string, flow cognitoauth.Flow, store cognitoauth.Store) *cognitoauth.Source {
	t.Helper()
	src, err := cognitoauth.New(cognitoauth.Config{
		Client: s.idp, UserPoolID: s.Info.UserPoolID, ClientID: s.Info.UserPoolClientID, Flow: flow, Store: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SignIn(t.Context(), name, password); err != nil {
		t.Fatal(err)
	}
	return src
}

// recorder is the client's transport: the real one, with a log of the
// endpoint's requests and statuses.
type recorder struct {
	mu   sync.Mutex
	log  []string // "<status> <query> <cache-control>"
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf("%d %s %s", status, req.URL.RawQuery, req.Header.Get("Cache-Control")))
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (s *stack) client(t *testing.T, tokens client.TokenSource, opts ...func(*client.Options)) (*client.Client, *recorder) {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	c, err := client.New(s.Info.APIURL, tokens, append([]func(*client.Options){func(o *client.Options) {
		o.HTTPClient = &http.Client{Transport: rec, Timeout: 30 * time.Second}
	}}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// until refreshes the answer until ok holds: the projection is
// asynchronous, as on AWS.
func until(t *testing.T, c *client.Client, project string, ok func(*client.Answer, error) bool) *client.Answer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := c.Refresh(t.Context(), project)
		if ok(a, err) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("the endpoint never gave the expected answer; last: %+v, %v", a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bucketName is a valid 63-character bucket name, the longest there is:
// fewest grants per credential set.
func bucketName(run string, i int) string {
	b := fmt.Sprintf("cb-%s-%02d-", run, i)
	return b + strings.Repeat("x", 63-len(b)-1) + "z"
}

func TestAgainstTheLocalStack(t *testing.T) {
	st := startStack(t)
	run := strings.ToLower(strings.TrimPrefix(mototest.Name(t, ""), "-"))[:8]

	t.Run("routing over three credential sets", func(t *testing.T) {
		sub := st.user(t, "routing", "Routing-Passw0rd!")
		var wide, folders []string
		for i := range 26 {
			wide = append(wide, bucketName(run, i))
			st.tables.Bucket(t, "wide-"+run, wide[i], "")
		}
		for i := range 4 {
			folders = append(folders, bucketName(run, 50+i))
			st.tables.Bucket(t, "folders-"+run, folders[i], "team-x")
		}
		st.tables.Member(t, sub, "wide-"+run, "read")
		st.tables.Member(t, sub, "folders-"+run, "write")
		c, _ := st.client(t, st.signIn(t, "routing", "Routing-Passw0rd!", cognitoauth.FlowAuto, nil))
		a := until(t, c, "", func(a *client.Answer, err error) bool {
			n := 0
			if err == nil {
				for _, s := range a.CredentialSets {
					n += len(s.Grants)
				}
			}
			return n == 30
		})
		if len(a.CredentialSets) < 3 {
			t.Fatalf("the grants fit %d credential sets; the test needs at least 3", len(a.CredentialSets))
		}
		holder := map[string]string{} // bucket -> access key of the set listing it
		for _, s := range a.CredentialSets {
			for _, g := range s.Grants {
				if prev, dup := holder[g.Bucket]; dup {
					t.Errorf("bucket %s listed by two sets (%s, %s)", g.Bucket, prev, s.AccessKeyID)
				}
				holder[g.Bucket] = s.AccessKeyID
			}
		}
		policies := mototest.SessionPolicies(t)
		usedSets := map[string]bool{}
		check := func(p *client.Provider, bucket string) {
			t.Helper()
			creds, err := p.Retrieve(t.Context())
			if err != nil {
				t.Errorf("%v: %v", p.Target(), err)
				return
			}
			if creds.AccessKeyID != holder[bucket] {
				t.Errorf("%v routed to %s, but the set listing %s is %s", p.Target(), creds.AccessKeyID, bucket, holder[bucket])
			}
			// What STS received for that key: the set's credentials
			// reach the bucket.
			if !strings.Contains(policies[creds.AccessKeyID], "arn:aws:s3:::"+bucket) {
				t.Errorf("%v: the session policy of %s does not name the bucket", p.Target(), creds.AccessKeyID)
			}
			usedSets[creds.AccessKeyID] = true
		}
		for _, b := range wide {
			check(c.CredentialsProvider(b), b)
			check(c.ObjectCredentialsProvider(b, "any/key", client.Read), b)
		}
		for _, b := range folders {
			check(c.CredentialsProvider(b), b)
			check(c.ObjectCredentialsProvider(b, "team-x/run/1.csv", client.Write), b)
		}
		if len(usedSets) != len(a.CredentialSets) {
			t.Errorf("routing used %d of %d sets", len(usedSets), len(a.CredentialSets))
		}
		for _, p := range []*client.Provider{
			c.ObjectCredentialsProvider(wide[0], "k", client.Write),              // read only
			c.ObjectCredentialsProvider(folders[0], "team-y/1.csv", client.Read), // another folder
			c.CredentialsProvider(bucketName(run, 99)),                           // not granted
		} {
			_, err := p.Retrieve(t.Context())
			var ae *client.AccessError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), p.Target().Bucket) {
				t.Errorf("%v: %v, want an AccessError naming the bucket", p.Target(), err)
			}
		}

		// The provider drives a real S3 client (moto's S3 does not
		// enforce IAM: this shows the wiring, the policies above show
		// the scope).
		admin := s3.NewFromConfig(mototest.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
		if _, err := admin.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(folders[0])}); err != nil {
			t.Fatal(err)
		}
		p := c.ObjectCredentialsProvider(folders[0], "team-x/", client.Write)
		user := s3.NewFromConfig(aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(st.Info.AWSEndpoint)}, func(o *s3.Options) {
			o.UsePathStyle, o.Credentials = true, p
			o.APIOptions = append(o.APIOptions, p.RetryOnAccessDenied)
		})
		if _, err := user.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(folders[0]), Key: aws.String("team-x/hello.txt"), Body: strings.NewReader("hello")}); err != nil {
			t.Fatal(err)
		}
		out, err := user.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(folders[0]), Key: aws.String("team-x/hello.txt")})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		if b, _ := io.ReadAll(out.Body); string(b) != "hello" {
			t.Errorf("read back %q", b)
		}
	})

	t.Run("expiry with a fake clock", func(t *testing.T) {
		sub := st.user(t, "expiry", "Expiry-Passw0rd!")
		st.tables.Bucket(t, "expiry-"+run, "expiry-"+run, "")
		st.tables.Member(t, sub, "expiry-"+run, "read")
		clock := fakeclock.New(time.Now())
		c, rec := st.client(t, st.signIn(t, "expiry", "Expiry-Passw0rd!", cognitoauth.FlowPassword, nil),
			func(o *client.Options) { o.Now = clock.Now })
		a := until(t, c, "", func(a *client.Answer, err error) bool { return err == nil })
		life := a.Expiration.Sub(clock.Now())
		before := len(rec.requests())
		p := c.CredentialsProvider("expiry-" + run)
		clock.Add(life - client.DefaultMargin - time.Second)
		if _, err := p.Retrieve(t.Context()); err != nil || len(rec.requests()) != before {
			t.Fatalf("refetched before the margin: %v, requests %v", err, rec.requests()[before:])
		}
		clock.Add(2 * time.Second)
		if _, err := p.Retrieve(t.Context()); err != nil || len(rec.requests()) != before+1 {
			t.Fatalf("not refetched at the margin: %v, requests %v", err, rec.requests()[before:])
		}
	})

	t.Run("a new policyVersion drops the answers of the old one", func(t *testing.T) {
		sub := st.user(t, "version", "Version-Passw0rd!")
		project := "version-" + run
		st.tables.Bucket(t, project, "version-a-"+run, "")
		st.tables.Member(t, sub, project, "write")
		c, rec := st.client(t, st.signIn(t, "version", "Version-Passw0rd!", cognitoauth.FlowPassword, nil))
		old := until(t, c, "", func(a *client.Answer, err error) bool { return err == nil })
		if _, err := c.Answer(t.Context(), project); err != nil {
			t.Fatal(err)
		}
		st.tables.Bucket(t, project, "version-b-"+run, "raw")
		until(t, c, "", func(a *client.Answer, err error) bool { return err == nil && a.PolicyVersion != old.PolicyVersion })
		before := len(rec.requests())
		a, err := c.Answer(t.Context(), project)
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.requests()[before:]; len(got) != 1 {
			t.Errorf("the project's answer of the old version was served: requests %v", got)
		}
		if a.PolicyVersion == old.PolicyVersion {
			t.Errorf("project answer still at the old version %s", a.PolicyVersion)
		}
		if _, err := c.ObjectCredentialsProvider("version-b-"+run, "raw/x", client.Write).Retrieve(t.Context()); err != nil {
			t.Errorf("the new folder is not reachable: %v", err)
		}
	})

	t.Run("a refused token is refreshed once", func(t *testing.T) {
		sub := st.user(t, "refresh", "Refresh-Passw0rd!")
		st.tables.Bucket(t, "refresh-"+run, "refresh-"+run, "")
		st.tables.Member(t, sub, "refresh-"+run, "read")
		store := &memoryStore{}
		src := st.signIn(t, "refresh", "Refresh-Passw0rd!", cognitoauth.FlowPassword, store)
		c, rec := st.client(t, src)
		until(t, c, "", func(a *client.Answer, err error) bool { return err == nil })
		// Break the held access token's signature: the endpoint refuses
		// it, the refresh token is still good.
		tok, _ := src.Tokens(t.Context())
		tok.AccessToken = tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
		store.t = &tok
		c2, rec2 := st.client(t, mustSource(t, st, store))
		if _, err := c2.Answer(t.Context(), ""); err != nil {
			t.Fatalf("after a refused token: %v", err)
		}
		got := rec2.requests()
		if len(got) != 2 || !strings.HasPrefix(got[0], "401") || !strings.HasPrefix(got[1], "200") {
			t.Errorf("requests %v, want a 401 then a 200", got)
		}
		if store.t.AccessToken == tok.AccessToken {
			t.Error("the refreshed token was not stored")
		}
		_ = rec
	})

	t.Run("no access names the bucket", func(t *testing.T) {
		st.user(t, "outsider", "Outsider-Passw0rd!")
		c, _ := st.client(t, st.signIn(t, "outsider", "Outsider-Passw0rd!", cognitoauth.FlowPassword, nil))
		_, err := c.CredentialsProvider("genomics-" + run).Retrieve(t.Context())
		var ee *client.EndpointError
		var ae *client.AccessError
		if !errors.Is(err, client.ErrNoAccess) || !errors.As(err, &ae) || !errors.As(err, &ee) || ee.Code != "no_access" ||
			!strings.Contains(err.Error(), "genomics-"+run) {
			t.Errorf("err = %v, want the endpoint's no_access naming the bucket", err)
		}
		_, err = c.Answer(t.Context(), "not-my-project")
		if !errors.Is(err, client.ErrNoAccess) {
			t.Errorf("another project: %v, want ErrNoAccess", err)
		}
	})
}

// memoryStore is a cognitoauth.Store in memory.
type memoryStore struct {
	mu sync.Mutex
	t  *cognitoauth.Tokens
}

func (m *memoryStore) Load(context.Context) (*cognitoauth.Tokens, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t, nil
}

func (m *memoryStore) Save(_ context.Context, t *cognitoauth.Tokens) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t = t
	return nil
}

func mustSource(t *testing.T, st *stack, store cognitoauth.Store) *cognitoauth.Source {
	t.Helper()
	src, err := cognitoauth.New(cognitoauth.Config{Client: st.idp, UserPoolID: st.Info.UserPoolID, ClientID: st.Info.UserPoolClientID, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return src
}
