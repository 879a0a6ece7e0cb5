//go:build integration

package localstack_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// The shapes of issue 21's local-stack run (docs/benchmarks.md
// "Revocation at organisation scale (issue 21)").
const (
	scaleSolo  = 45  // users narrowed one a second, each leaving their own project
	scaleBulk  = 200 // members of the project that loses a bucket
	scaleEvery = time.Second
	// scaleSettle bounds how long after the last write every old session
	// must be denied before the test gives up (the target is 5 s from each
	// item; the fan-out of 200 items alone takes about 20 s under -race).
	scaleSettle = 90 * time.Second
)

// scaleUser is a seeded user: the bucket its old session is judged on and
// when the write that narrows it was made.
type scaleUser struct {
	old    session
	bucket string
	// written is when the narrowing write was sent (zero before); item is
	// the narrowed policy item's updatedAt; announced is when the revoker
	// logged its CredentialsRevoked event, after putting the deny on the
	// role; denied is when a poll first saw the old session denied.
	written, item, announced, denied time.Time
}

// TestRevocationAtOrganisationScale drives the local stack (the real
// stream, projector, revocation feed in batches two at once, revoker and
// IAM in moto) through issue 21's organisation-scale shape: 45 users leave
// their projects one a second, then one bucket removal narrows a 200-member
// project at once. Every narrowed user's old session (minted before, with
// the never-revoked cutoff tag) ends denied by the base role's policies,
// no user is denied before its narrowing, a bystander's session works
// throughout, and the deny list never falls back to its cutoff for
// everyone. Times are logged, not asserted (`make revocation-scale`).
func TestRevocationAtOrganisationScale(t *testing.T) {
	began := time.Now()
	proxy, calls := iamCounter(t)
	announced := &announcements{at: map[string]time.Time{}}
	st := stacktest.Start(t, localstack.Options{StackEndpoint: proxy, Logger: slog.New(announced)})
	t.Logf("stack started in %v", time.Since(began).Round(time.Millisecond))
	ctx := context.Background()
	ddb := dynamodb.NewFromConfig(mototest.Config(t))
	store := &ddbstore.Store{Client: ddb, MembershipTable: st.Info.MembershipTable, PolicyTable: st.Info.PolicyTable}

	// Buckets before members, so that seeding fans nothing out.
	seeded := time.Now()
	tables := mototest.Tables{DDB: ddb, Membership: st.Info.MembershipTable, Policy: st.Info.PolicyTable}
	users := map[string]*scaleUser{}
	var solo, bulk []string
	for i := range scaleSolo {
		id, project := fmt.Sprintf("5ca1e000-0000-4000-8000-%012d", i), fmt.Sprintf("solo-%02d", i)
		bucket := "scale-" + project
		tables.Bucket(t, project, bucket, "")
		tables.Member(t, id, project, "read")
		users[id] = &scaleUser{bucket: bucket}
		solo = append(solo, id)
	}
	tables.Bucket(t, "bulk", "scale-bulk-a", "")
	tables.Bucket(t, "bulk", "scale-bulk-b", "")
	for i := range scaleBulk {
		id := fmt.Sprintf("b01c0000-0000-4000-8000-%012d", i)
		tables.Member(t, id, "bulk", "read")
		users[id] = &scaleUser{bucket: "scale-bulk-a"}
		bulk = append(bulk, id)
	}
	const bystander = "b157a4de-0000-4000-8000-000000000000"
	tables.Bucket(t, "elsewhere", "scale-elsewhere", "")
	tables.Member(t, bystander, "elsewhere", "read")

	// Each user's old session: the session policy of the set the endpoint
	// would mint for the bucket now, tagged with the cutoff of a user never
	// revoked, issued before any narrowing.
	var by session
	sessions := waitSeeded(t, store, slices.Concat(solo, bulk, []string{bystander}), func(id string) string {
		if u, ok := users[id]; ok {
			return u.bucket
		}
		return "scale-elsewhere"
	})
	for id, c := range scanCutoffs(t, ddb, st.Info.PolicyTable) {
		if !c.before.IsZero() {
			t.Fatalf("setup: %s has a cutoff already (%v): its old session's tag would not be the never-revoked one", id, c.before)
		}
	}
	for id, pol := range sessions {
		s := session{user: id, issued: time.Now(), policy: pol, tag: broker.CutoffTag(id, time.Time{})}
		if u, ok := users[id]; ok {
			u.old = s
		} else {
			by = s
		}
	}
	role := baseRole(t, st)
	roles := newRevocationPages(t, st)
	for id, u := range users {
		if !u.old.reaches(role, u.bucket) {
			t.Fatalf("setup: %s's session does not reach %s", id, u.bucket)
		}
	}
	if !by.reaches(role, "scale-elsewhere") {
		t.Fatal("setup: the bystander's session does not reach its bucket")
	}
	runsBefore, writesBefore := calls.runs(), calls.writes()
	t.Logf("seeded %d users (writes and projection) in %v", len(users)+1, time.Since(seeded).Round(time.Millisecond))

	// The writer: one narrowing a second, then the bulk one.
	var (
		mu       sync.Mutex
		writeErr error
	)
	wrote := func(ids []string, at time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			users[id].written = at
		}
		writeErr = cmp.Or(writeErr, err)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(scaleEvery)
		defer tick.Stop()
		for i, id := range solo {
			at := time.Now()
			err := deleteItem(ctx, ddb, st.Info.MembershipTable, "USER#"+id, fmt.Sprintf("PROJECT#solo-%02d", i))
			wrote([]string{id}, at, err)
			if err != nil {
				return
			}
			<-tick.C
		}
		at := time.Now()
		wrote(bulk, at, deleteItem(ctx, ddb, st.Info.MembershipTable, "PROJECT#bulk", "BUCKET#scale-bulk-a"))
	}()

	// The polls: the deny list's fallback and the base role's policies as
	// IAM holds them, until every old session is denied.
	var (
		fellBack   time.Time
		polls      int
		pollTime   time.Duration
		early      = map[string]bool{}
		bystanderX bool
		deadline   time.Time
	)
	for {
		cycle := time.Now()
		list, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !list.All.Before.IsZero() && fellBack.IsZero() {
			fellBack = cycle
		}
		role := roles.read(t)
		mu.Lock()
		pending := 0
		for id, u := range users {
			if u.written.IsZero() {
				if !early[id] && !u.old.reaches(role, u.bucket) {
					early[id] = true
					t.Errorf("%s's session was denied before its narrowing", id)
				}
				pending++
				continue
			}
			if u.denied.IsZero() {
				if u.old.reaches(role, u.bucket) {
					pending++
				} else {
					u.denied = time.Now()
				}
			}
		}
		err = writeErr
		mu.Unlock()
		if err != nil {
			t.Fatalf("narrowing write: %v", err)
		}
		if !bystanderX && !by.reaches(role, "scale-elsewhere") {
			bystanderX = true
			t.Error("the bystander's session was denied")
		}
		polls++
		pollTime += time.Since(cycle)
		if pending == 0 {
			break
		}
		select {
		case <-writerDone:
			if deadline.IsZero() {
				deadline = time.Now().Add(scaleSettle)
			}
		default:
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the poll interval
	}
	<-writerDone

	// Outcomes. The narrowing is the last change to each user's item, so
	// its updatedAt (the projector's clock as it computed the item, just
	// before writing it) is when the narrowed item was written.
	cutoffs := scanCutoffs(t, ddb, st.Info.PolicyTable)
	var notDenied, noCutoff []string
	for _, id := range slices.Sorted(maps.Keys(users)) {
		u := users[id]
		if u.denied.IsZero() {
			notDenied = append(notDenied, id)
		}
		u.announced = announced.of(id)
		if c := cutoffs[id]; c.before.IsZero() || c.updated.Before(u.written) {
			noCutoff = append(noCutoff, id)
		} else {
			u.item = c.updated
		}
	}
	if len(notDenied) > 0 {
		t.Errorf("%d narrowed users' old sessions still allowed %v after the last write: %v", len(notDenied), scaleSettle, notDenied)
	}
	if len(noCutoff) > 0 {
		t.Errorf("%d narrowed users' policy items never showed a new cutoff: %v", len(noCutoff), noCutoff)
	}
	list, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !fellBack.IsZero() || !list.All.Before.IsZero() {
		t.Errorf("the deny list fell back to a cutoff for everyone (first seen %v, now %v)", fellBack, list.All.Before)
	}
	// The last word is the whole role as IAM holds it, read afresh.
	role = baseRole(t, st)
	if !by.reaches(role, "scale-elsewhere") {
		t.Error("the bystander's session is denied at the end")
	}
	for _, id := range slices.Sorted(maps.Keys(users)) {
		if u := users[id]; !u.denied.IsZero() && u.old.reaches(role, u.bucket) {
			t.Errorf("%s's old session reaches %s again at the end", id, u.bucket)
		}
	}

	// Figures.
	inline, managed := revocationPages(t, st)
	t.Logf("deny list: %d users (%d revoked tags, %d entries by time), version %d, generation %d; pages on the base role: inline (%d characters), managed %d",
		list.UsersListed(), len(list.Revoked), len(list.Users), list.Version, list.Generation, inline, managed)
	t.Logf("revoker runs (reads of page 0) %d; IAM writes %d: %v", calls.runs()-runsBefore, sumCounts(calls.writes())-sumCounts(writesBefore), diffCounts(calls.writes(), writesBefore))
	t.Logf("CredentialsRevoked events %d", announced.count())
	t.Logf("polls %d, mean poll %v", polls, (pollTime / time.Duration(max(polls, 1))).Round(time.Millisecond))
	for _, g := range []struct {
		name string
		ids  []string
	}{{"45 one a second", solo}, {"200 at once", bulk}} {
		var fromWrite, fromItem, items, toRole []time.Duration
		for _, id := range g.ids {
			u := users[id]
			if !u.item.IsZero() {
				items = append(items, u.item.Sub(u.written))
				if !u.announced.IsZero() {
					toRole = append(toRole, u.announced.Sub(u.item))
				}
			}
			if u.denied.IsZero() {
				continue
			}
			fromWrite = append(fromWrite, u.denied.Sub(u.written))
			if !u.item.IsZero() {
				fromItem = append(fromItem, u.denied.Sub(u.item))
			}
		}
		t.Logf("%-16s narrowed items written from the membership write: p50 %v max %v; the revoker announced from the item: p50 %v p95 %v max %v",
			g.name, pct(items, 50), pct(items, 100), pct(toRole, 50), pct(toRole, 95), pct(toRole, 100))
		t.Logf("%-16s denied %3d/%d  from the write p50 %v p95 %v max %v  from the item p50 %v p95 %v max %v",
			g.name, len(fromWrite), len(g.ids), pct(fromWrite, 50), pct(fromWrite, 95), pct(fromWrite, 100),
			pct(fromItem, 50), pct(fromItem, 95), pct(fromItem, 100))
	}
}

// waitSeeded waits until every user's policy item grants its bucket and
// returns the session policy of the set that holds it.
func waitSeeded(t *testing.T, store *ddbstore.Store, ids []string, bucket func(string) string) map[string]iameval.Policy {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	// A count first, every half second: scanning the documents costs moto
	// more, and moto is busy projecting.
	for granted(t, store) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d items grant anything after 90 s", len(ids))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for {
		got := map[string]iameval.Policy{}
		err := store.ScanPolicies(context.Background(), 0, 1, func(id string, p broker.UserPolicy, err error) error {
			if err != nil {
				return err
			}
			for _, set := range p.Sets {
				if slices.ContainsFunc(set.Grants, func(g int) bool { return p.Grants[g].Bucket == bucket(id) }) {
					pol, err := iameval.Parse(set.Policy)
					if err != nil {
						return fmt.Errorf("%s's session policy: %w", id, err)
					}
					got[id] = pol
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { _, ok := got[id]; return ok })
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users' items grant nothing yet after 90 s: %v", len(missing), missing[:min(len(missing), 5)])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// granted counts the policy items that grant something.
func granted(t *testing.T, store *ddbstore.Store) int {
	t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(store.Client.(*dynamodb.Client), &dynamodb.ScanInput{TableName: aws.String(store.PolicyTable), ConsistentRead: aws.Bool(true),
		Select: types.SelectCount, FilterExpression: aws.String("sk = :p AND attribute_exists(doc)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": mototest.S("POLICY")}})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += int(page.Count)
	}
	return n
}

func deleteItem(ctx context.Context, ddb *dynamodb.Client, table, pk, sk string) error {
	_, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: mototest.Key(pk, sk)})
	return err
}

type cutoff struct{ before, updated time.Time }

// scanCutoffs reads every policy item's cutoff and updatedAt in one scan.
func scanCutoffs(t *testing.T, ddb *dynamodb.Client, table string) map[string]cutoff {
	t.Helper()
	out := map[string]cutoff{}
	p := dynamodb.NewScanPaginator(ddb, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		FilterExpression: aws.String("sk = :p"), ProjectionExpression: aws.String("pk, revokedBefore, updatedAt"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": mototest.S("POLICY")}})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			var c cutoff
			if n, ok := it["revokedBefore"].(*types.AttributeValueMemberN); ok {
				ms, err := strconv.ParseInt(n.Value, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				c.before = time.UnixMilli(ms)
			}
			if u, ok := it["updatedAt"].(*types.AttributeValueMemberS); ok {
				c.updated, _ = time.Parse(time.RFC3339Nano, u.Value)
			}
			if pk, ok := it["pk"].(*types.AttributeValueMemberS); ok {
				out[strings.TrimPrefix(pk.Value, broker.UserKeyPrefix)] = c
			}
		}
	}
	return out
}

// rolePages reads the base role's policies as IAM holds them, reading only
// the revocation pages (the inline policy and the attached managed pages)
// afresh: the boundary and the role's other policies do not change during
// the run, and every call the test makes is moto time the stack does not
// get.
type rolePages struct {
	c     *iam.Client
	name  string
	fixed mototest.RolePolicies
}

func newRevocationPages(t *testing.T, st *localstack.Stack) rolePages {
	t.Helper()
	name, err := iamrole.NameFromARN(st.Info.BaseRoleARN)
	if err != nil {
		t.Fatal(err)
	}
	return rolePages{c: iam.NewFromConfig(mototest.Config(t)), name: name, fixed: mototest.Role(t, name)}
}

func (r rolePages) read(t *testing.T) iameval.Role {
	t.Helper()
	ctx := context.Background()
	now := mototest.RolePolicies{Boundary: r.fixed.Boundary, Managed: map[string]string{}, Inline: maps.Clone(r.fixed.Inline)}
	delete(now.Inline, iamrole.PolicyName)
	out, err := r.c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(r.name), PolicyName: aws.String(iamrole.PolicyName)})
	var missing *iamtypes.NoSuchEntityException
	switch {
	case errors.As(err, &missing):
	case err != nil:
		t.Fatal(err)
	default:
		now.Inline[iamrole.PolicyName] = pathUnescape(t, aws.ToString(out.PolicyDocument))
	}
	attached, err := r.c.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(r.name), MaxItems: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range attached.AttachedPolicies {
		arn := aws.ToString(p.PolicyArn)
		if doc, ok := r.fixed.Managed[arn]; ok && !strings.Contains(arn, r.name+"-revocations-") {
			now.Managed[arn] = doc
			continue
		}
		pol, err := r.c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.c.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: pol.Policy.DefaultVersionId})
		if err != nil {
			t.Fatal(err)
		}
		now.Managed[arn] = pathUnescape(t, aws.ToString(v.PolicyVersion.Document))
	}
	return now.Eval(t)
}

// pathUnescape undoes IAM's URL encoding of a policy document.
func pathUnescape(t *testing.T, doc string) string {
	t.Helper()
	d, err := url.PathUnescape(doc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// revocationPages returns the size of the base role's inline revocation
// page (as IAM counts it; 0 when there is none) and how many managed
// revocation pages are attached to it.
func revocationPages(t *testing.T, st *localstack.Stack) (int, int) {
	t.Helper()
	name, err := iamrole.NameFromARN(st.Info.BaseRoleARN)
	if err != nil {
		t.Fatal(err)
	}
	pol := mototest.Role(t, name)
	managed := 0
	for arn := range pol.Managed {
		if strings.Contains(arn, name+"-revocations-") {
			managed++
		}
	}
	return broker.PolicySize(pol.Inline[iamrole.PolicyName]), managed
}

// pct is the p-th percentile of d (0 when d is empty), to the millisecond.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[max((len(s)*p+99)/100-1, 0)].Round(time.Millisecond)
}

// announcements is the stack's log handler: it notes when the revoker
// announced each user's revocation ("credentials revoked", logged once
// its CredentialsRevoked event is sent, after the deny is on the role).
type announcements struct {
	mu     sync.Mutex
	at     map[string]time.Time
	events int
}

func (a *announcements) Enabled(context.Context, slog.Level) bool { return true }
func (a *announcements) WithAttrs([]slog.Attr) slog.Handler       { return a }
func (a *announcements) WithGroup(string) slog.Handler            { return a }

func (a *announcements) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "credentials revoked" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events++
	r.Attrs(func(at slog.Attr) bool {
		if ids, ok := at.Value.Any().([]string); ok && at.Key == "users" {
			for _, id := range ids {
				if _, seen := a.at[id]; !seen {
					a.at[id] = r.Time
				}
			}
		}
		return true
	})
	return nil
}

func (a *announcements) of(id string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[id]
}

func (a *announcements) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events
}

// iamCalls counts the IAM actions the stack's own clients send (its
// StackEndpoint); the test's reads go to moto directly.
type iamCalls struct {
	mu sync.Mutex
	n  map[string]int
}

// The IAM actions that write the base role's revocation pages.
var pageWrites = []string{"PutRolePolicy", "DeleteRolePolicy", "CreatePolicy", "CreatePolicyVersion", "DeletePolicyVersion", "AttachRolePolicy"}

// runs counts the revoker's runs: each reads page 0, the inline policy,
// once, and nothing else of the stack reads it.
func (c *iamCalls) runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n["GetRolePolicy "+iamrole.PolicyName]
}

func (c *iamCalls) writes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, a := range pageWrites {
		if c.n[a] > 0 {
			out[a] = c.n[a]
		}
	}
	return out
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func diffCounts(now, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// iamCounter starts a proxy to moto that counts the IAM (query protocol)
// actions it forwards, and returns its URL.
func iamCounter(t *testing.T) (string, *iamCalls) {
	t.Helper()
	target, err := url.Parse(mototest.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // requests cut off as the stack stops
	c := &iamCalls{n: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if q, err := url.ParseQuery(string(body)); err == nil {
				action := q.Get("Action")
				if action == "GetRolePolicy" {
					action += " " + q.Get("PolicyName")
				}
				c.mu.Lock()
				c.n[action]++
				c.mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, c
}
