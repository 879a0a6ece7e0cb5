//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// moto enforces no IAM: these tests stand in for it. The stack's own AWS
// calls go through stsLog, which remembers what each access key was
// minted for; S3 calls go through a judge that evaluates the base role's
// revocation policy, as IAM holds it now, with the project's IAM
// evaluator, and answers AccessDenied for what it denies.

// stsLog is a reverse proxy to moto that records every AssumeRole.
type stsLog struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]rolesession.Session
}

func newSTSLog(t *testing.T, moto string) *stsLog {
	t.Helper()
	u, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	l := &stsLog{keys: map[string]rolesession.Session{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = l.observe
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), formKey{}, form)))
	}))
	t.Cleanup(l.Close)
	return l
}

type formKey struct{}

func (l *stsLog) observe(resp *http.Response) error {
	form, _ := resp.Request.Context().Value(formKey{}).(url.Values)
	key, s, ok, err := rolesession.FromResponse(form, resp)
	if ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.keys[key] = s
	}
	return err
}

// known returns the access keys minted so far.
func (l *stsLog) known() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for k := range l.keys {
		out[k] = true
	}
	return out
}

func (l *stsLog) of(key string) (rolesession.Session, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.keys[key]
	return m, ok
}

// judge decides, as IAM would, whether the base role's revocation policy
// denies a session.
type judge struct {
	sts  *stsLog
	role *iamrole.Role
}

func (j judge) allows(t *testing.T, key string) bool {
	t.Helper()
	s, ok := j.sts.of(key)
	if !ok {
		t.Errorf("access key %s was never minted through the stack", key)
		return false
	}
	budgets, err := j.role.Budgets(context.Background())
	if err != nil {
		t.Error(err)
		return false
	}
	docs := make([]string, len(budgets))
	for i := range docs {
		if docs[i], err = j.role.Current(context.Background(), i); err != nil {
			t.Error(err)
			return false
		}
	}
	pol, err := rolesession.RevocationPolicy(docs...)
	if err != nil {
		t.Errorf("the base role's revocation policy: %v", err)
		return false
	}
	return s.AllowedBy(pol)
}

// timeline keeps what happened, in order, to be checked afterwards.
type timeline[T any] struct {
	mu    sync.Mutex
	items []T
	at    func(T) time.Time
}

func (l *timeline[T]) add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v)
}

// since returns what happened at or after t0.
func (l *timeline[T]) since(t0 time.Time) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for _, v := range l.items {
		if !l.at(v).Before(t0) {
			out = append(out, v)
		}
	}
	return out
}

// call is one use of credentials: when, with which key, and whether IAM
// allowed it.
type call struct {
	at      time.Time
	key     string
	allowed bool
}

func newCalls() *timeline[call] { return &timeline[call]{at: func(c call) time.Time { return c.at }} }

// s3Judge is a reverse proxy to moto's S3 that answers AccessDenied to
// every request the judge denies.
type s3Judge struct {
	*httptest.Server
	calls *timeline[call]
}

func newS3Judge(t *testing.T, moto string, j judge) *s3Judge {
	t.Helper()
	u, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	s := &s3Judge{calls: newCalls()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		key, _, _ := strings.Cut(cred, "/")
		c := call{at: time.Now(), key: key, allowed: j.allows(t, key)}
		s.calls.add(c)
		if !c.allowed {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// answerSeen is one answer of the endpoint to a client: when it arrived,
// its status and the revocations it told of.
type answerSeen struct {
	at                    time.Time
	status                int
	revokedBefore, allOff time.Time
}

// endpointLog is a reverse proxy to the credential endpoint that records
// its answers.
type endpointLog struct {
	*httptest.Server
	answers *timeline[answerSeen]
}

func newEndpointLog(t *testing.T, api string) *endpointLog {
	t.Helper()
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	l := &endpointLog{answers: &timeline[answerSeen]{at: func(a answerSeen) time.Time { return a.at }}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var a struct { // the answer's optional fields (docs/contract.md "Credential endpoint")
			RevokedBefore    time.Time `json:"revokedBefore"`
			AllRevokedBefore time.Time `json:"allRevokedBefore"`
		}
		_ = json.Unmarshal(body, &a)
		l.answers.add(answerSeen{at: time.Now(), status: resp.StatusCode, revokedBefore: a.RevokedBefore, allOff: a.AllRevokedBefore})
		return err
	}
	l.Server = httptest.NewServer(rp)
	t.Cleanup(l.Close)
	return l
}

// tinyBudget is the base role with room for no deny list at all: whatever
// the revoker adds makes it fall back to one cutoff for everybody.
type tinyBudget struct{ *iamrole.Role }

func (tinyBudget) Budgets(context.Context) ([]int, error) { return []int{1}, nil }

// The Go client (with RetryOnAccessDenied) and the credential-process
// command recover from a revocation by themselves, with a bounded number
// of requests to the endpoint, and never use credentials a revocation
// they have been told of denies: after a narrowing of the user, and after
// the deny list fell back to one cutoff for everybody (scope "all").
// Measured, not asserted: the time from the revocation to working
// credentials (docs/security.md "Clients after a revocation"; docs/benchmarks.md
// "Client recovery after a revocation (issue 20)").
func TestClientRecoversAfterRevocation(t *testing.T) {
	ctx := t.Context()
	moto := mototest.Endpoint(t)
	sts := newSTSLog(t, moto)
	st := stacktest.Start(t, localstack.Options{Name: "recover", StackEndpoint: sts.URL})
	cfg := mototest.Config(t)
	role := &iamrole.Role{Client: iam.NewFromConfig(cfg), ARN: st.Info.BaseRoleARN}
	j := judge{sts: sts, role: role}
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(cfg), PolicyTable: st.Info.PolicyTable}

	// dana reads project keep and writes project drop; the narrowing
	// removes drop.
	runID := strings.TrimPrefix(mototest.Name(t, ""), "-")[:8]
	keep, drop := "keep-"+runID, "drop-"+runID
	idp := cip.NewFromConfig(cfg)
	tables := mototest.Tables{DDB: dynamodb.NewFromConfig(cfg), Membership: st.Info.MembershipTable}
	sub := mototest.User(t, idp, st.Info.UserPoolID, "dana", "Dana-Passw0rd!")
	tables.Bucket(t, keep, keep, "")
	tables.Bucket(t, drop, drop, "")
	tables.Member(t, sub, keep, "read")
	tables.Member(t, sub, drop, "write")
	admin := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(keep)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(keep), Key: aws.String("hello.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}

	// The Go client, with the S3 client docs/clients.md "Go" shows.
	goAPI := newEndpointLog(t, st.Info.APIURL)
	tokens, err := cognitoauth.New(cognitoauth.Config{Client: idp, UserPoolID: st.Info.UserPoolID, ClientID: st.Info.UserPoolClientID, Flow: cognitoauth.FlowPassword})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.SignIn(ctx, "dana", "Dana-Passw0rd!"); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(goAPI.URL, tokens)
	if err != nil {
		t.Fatal(err)
	}
	goS3 := newS3Judge(t, moto, j)
	p := c.CredentialsProvider(keep)
	s3c := s3.NewFromConfig(aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(goS3.URL)}, func(o *s3.Options) {
		o.UsePathStyle, o.Credentials = true, p
		o.APIOptions = append(o.APIOptions, p.RetryOnAccessDenied)
	})
	// The projection is asynchronous, as on AWS.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a, err := c.Refresh(ctx, "")
		if err == nil && len(a.CredentialSets) == 1 && len(a.CredentialSets[0].Grants) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the endpoint never served both of dana's grants: %+v, %v", a, err)
		}
	}
	getObject := func() error {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(keep), Key: aws.String("hello.txt")})
		if err == nil {
			out.Body.Close()
		}
		return err
	}

	// The command, as botocore runs it before its calls; its answers are
	// judged the same way.
	cliAPI := newEndpointLog(t, st.Info.APIURL)
	info := st.Info
	info.APIURL = cliAPI.URL
	stackFile := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(stackFile, info); err != nil {
		t.Fatal(err)
	}
	configHome := t.TempDir()
	cli := func(vars map[string]string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
			Getenv: func(k string) string { return vars[k] }, ConfigDir: configHome})
		return code, stdout.String(), stderr.String()
	}
	if code, _, errOut := cli(map[string]string{"CREDBROKER_PASSWORD": "Dana-Passw0rd!"}, "login", "--stack", stackFile, "--username", "dana"); code != exitcode.OK {
		t.Fatalf("login: exit %d: %s", code, errOut)
	}
	cliCalls := newCalls()
	credentialProcess := func() error {
		code, out, errOut := cli(nil, "credential-process", "--stack", stackFile, "--bucket", keep)
		if code != exitcode.OK {
			return fmt.Errorf("credential-process: exit %d: %s", code, errOut)
		}
		var pc processCredentials
		if err := json.Unmarshal([]byte(out), &pc); err != nil {
			return err
		}
		cl := call{at: time.Now(), key: pc.AccessKeyID, allowed: j.allows(t, pc.AccessKeyID)}
		cliCalls.add(cl)
		if !cl.allowed {
			return fmt.Errorf("AccessDenied for %s", pc.AccessKeyID)
		}
		return nil
	}
	type workload struct {
		name  string
		use   func() error
		calls func(time.Time) []call
		api   *endpointLog
	}
	workloads := []workload{
		{"Go client", getObject, goS3.calls.since, goAPI},
		{"credential-process", credentialProcess, cliCalls.since, cliAPI},
	}
	for _, w := range workloads {
		if err := w.use(); err != nil {
			t.Fatalf("%s before any revocation: %v", w.name, err)
		}
	}

	// revoked says, once the revocation is done, whether an answer told
	// of it.
	scenarios := []struct {
		name   string
		revoke func(t *testing.T) (revoked func(answerSeen) bool)
	}{
		{"a narrowing of the user", func(t *testing.T) func(answerSeen) bool {
			tables.Leave(t, sub, drop)
			return func(a answerSeen) bool {
				pol, err := store.GetPolicy(ctx, sub)
				if err != nil {
					t.Fatal(err)
				}
				return !pol.RevokedBefore.IsZero() && !a.revokedBefore.Before(pol.RevokedBefore)
			}
		}},
		{`a fallback to "scope all"`, func(t *testing.T) func(answerSeen) bool {
			// The revoker's own service, with a role that has room for no
			// list: another user's revocation makes it fall back.
			svc := &revoker.Service{Store: revoker.RecordStore{Records: store}, Cutoffs: store, Role: tinyBudget{role}, MaxSession: 15 * time.Minute,
				Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })}
			_, err := svc.Revoke(ctx, revoker.Request{Reason: broker.ReasonNarrowed, Causes: []string{"test"},
				Entries: []revoker.Entry{{UserID: "c0ffee00-0000-4000-8000-000000000000", Before: broker.RevokeBefore(time.Now())}}})
			if err != nil {
				t.Fatal(err)
			}
			l, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx)
			if err != nil || l.All.Before.IsZero() || len(l.Users) != 0 {
				t.Fatalf("the deny list did not fall back: %+v, %v", l, err)
			}
			denied := l.All.Before.Add(time.Second - time.Nanosecond).Truncate(time.Second)
			return func(a answerSeen) bool { return !a.allOff.Before(denied) }
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			start, old := time.Now(), sts.known()
			revoked := sc.revoke(t)
			var wg sync.WaitGroup
			for _, w := range workloads {
				wg.Go(func() {
					// The workload calls back to back until it has made
					// five calls in a row with credentials minted since
					// the revocation started, or gives up after a minute.
					var recovered time.Time
					for ok := 0; ok < 5; {
						if time.Since(start) > time.Minute {
							t.Errorf("%s: no working credentials a minute after %s", w.name, sc.name)
							return
						}
						err := w.use()
						calls := w.calls(start)
						if err == nil && len(calls) > 0 && calls[len(calls)-1].allowed && !old[calls[len(calls)-1].key] {
							if ok++; ok == 1 {
								recovered = calls[len(calls)-1].at
							}
						} else {
							ok = 0
						}
					}
					calls, answers := w.calls(start), w.api.answers.since(start)
					var learned time.Time
					for _, a := range answers {
						if a.status == http.StatusOK && revoked(a) {
							learned = a.at
							break
						}
					}
					denied := 0
					for _, cl := range calls {
						if !cl.allowed {
							denied++
							if !learned.IsZero() && cl.at.After(learned) {
								t.Errorf("%s used %s, which the revocation denies, after an answer told of it", w.name, cl.key)
							}
						}
					}
					if learned.IsZero() {
						t.Errorf("%s: no answer of the endpoint told of the revocation", w.name)
					}
					var statuses []string // of the requests before recovery
					for _, a := range answers {
						if a.at.Before(recovered) {
							statuses = append(statuses, fmt.Sprintf("%d at %v", a.status, a.at.Sub(start).Round(10*time.Millisecond)))
						}
					}
					requests := len(statuses)
					if requests > 6 {
						t.Errorf("%s made %d requests to the endpoint before it recovered, want at most 6", w.name, requests)
					}
					t.Logf("%s: working credentials %v after %s (%d calls denied; endpoint answers %v)",
						w.name, recovered.Sub(start).Round(10*time.Millisecond), sc.name, denied, statuses)
				})
			}
			wg.Wait()
		})
	}
}
