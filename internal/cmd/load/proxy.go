package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

// proxy stands between the stack's own AWS clients and moto. It counts what
// reaches moto per operation, remembers what every AssumeRole was asked for
// and which access keys every CredentialsIssued event named, and, inside a
// fault window, delays, refuses, resets or holds requests. The generator's
// own calls (sign-in, the writer, the checks) go straight to moto.
type proxy struct {
	URL string

	moto *url.URL
	rp   *httputil.ReverseProxy
	srv  *http.Server

	mu     sync.Mutex
	counts counts
	// keys maps an access key id to what it was minted for.
	keys map[string]mint
	// minted counts successful AssumeRoles per (user, session policy,
	// cutoff tag).
	minted map[mint]int
	// issued holds when STS issued each access key.
	issued map[string]time.Time
	// deny is the base role's revocation policy as last written, after
	// an Allow of everything: it allows what the policy does not deny.
	deny  iameval.Policy
	pages map[string]string // the revocation pages as last written, by number
	// audited holds every access key id a CredentialsIssued entry named.
	audited map[string]bool
	window  faultWindow
	rng     *rand.Rand
}

// mint is what an AssumeRole was asked for: the user (SourceIdentity), the
// session policy and the revocation cutoff tag (docs/security.md "Revocation"). With
// the policy compiled deterministically from a set's grants, one mint is
// one (user, policyVersion, set) under one cutoff; after a revocation the
// endpoint must mint again under the new one, which is no duplicate.
type mint struct {
	User    string
	Policy  string
	UserTag string
	Tag     string
}

// counts are cumulative; the run takes differences of snapshots.
type counts struct {
	// Calls are the requests forwarded to moto, by operation
	// ("DynamoDB.GetItem", "sts.AssumeRole", ...).
	Calls map[string]int
	// Events are PutEvents entries forwarded, by detail-type.
	Events map[string]int
	// Faults are the faults injected, by kind.
	Faults map[string]int
	// DuplicateMints are successful AssumeRoles for a (user, session
	// policy, cutoff tag) that already had one.
	DuplicateMints int
	// DeniedOnArrival are answers whose credentials the base role's
	// revocation policy, as last written, denied when they arrived.
	DeniedOnArrival int
	// Reaudited are CredentialsIssued entries whose every access key had
	// been named by an earlier one: an answer served from the cache that
	// still went to the bus.
	Reaudited int
	// ProxyErrors are requests the proxy could not forward to moto.
	ProxyErrors int
}

func (c counts) clone() counts {
	out := c
	out.Calls, out.Events, out.Faults = cloneMap(c.Calls), cloneMap(c.Events), cloneMap(c.Faults)
	return out
}

func cloneMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// minus is what happened between snapshot b and c.
func (c counts) minus(b counts) counts {
	sub := func(x, y map[string]int) map[string]int {
		out := map[string]int{}
		for k, v := range x {
			if d := v - y[k]; d != 0 {
				out[k] = d
			}
		}
		return out
	}
	return counts{
		Calls: sub(c.Calls, b.Calls), Events: sub(c.Events, b.Events), Faults: sub(c.Faults, b.Faults),
		DuplicateMints: c.DuplicateMints - b.DuplicateMints, Reaudited: c.Reaudited - b.Reaudited,
		DeniedOnArrival: c.DeniedOnArrival - b.DeniedOnArrival,
		ProxyErrors:     c.ProxyErrors - b.ProxyErrors,
	}
}

func newProxy(motoURL string, seed uint64) (*proxy, error) {
	target, err := url.Parse(motoURL)
	if err != nil {
		return nil, err
	}
	p := &proxy{
		moto:    target,
		counts:  counts{Calls: map[string]int{}, Events: map[string]int{}, Faults: map[string]int{}},
		keys:    map[string]mint{},
		minted:  map[mint]int{},
		issued:  map[string]time.Time{},
		deny:    allowAll(),
		pages:   map[string]string{},
		audited: map[string]bool{},
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// The SDK signed the request for the proxy's host; keep it.
			r.Out.Host = r.In.Host
		},
		Transport:      &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second},
		ModifyResponse: p.observeResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				p.mu.Lock()
				p.counts.ProxyErrors++
				p.mu.Unlock()
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *proxy) Close() { _ = p.srv.Close() }

// snapshot returns the counts so far.
func (p *proxy) snapshot() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts.clone()
}

// minted returns what the access key was minted for, if it went through
// the proxy.
func (p *proxy) mintOf(accessKeyID string) (mint, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.keys[accessKeyID]
	return m, ok
}

// setWindow arms the faults of spec from start to end.
func (p *proxy) setWindow(w faultWindow) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = w
}

// call is what the proxy reads from one request.
type call struct {
	service string // dynamodb, streams, sts, events, cognito, other
	op      string
	body    []byte
	form    url.Values // query-protocol parameters
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c := classify(r, body)

	if fault := p.roll(c.service); fault.kind != "" {
		if !p.inject(w, r, c, fault) {
			return
		}
	}

	p.mu.Lock()
	p.counts.Calls[c.op]++
	if c.op == "AWSEvents.PutEvents" {
		p.observeEvents(body)
	}
	p.mu.Unlock()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
}

// callKey carries a request's call to observeResponse.
type callKey struct{}

// classify names a request's service and operation: X-Amz-Target for the
// JSON protocols (DynamoDB, Streams, EventBridge, Cognito), Action= in the
// form body for the query protocol (STS), the signing scope for the
// service.
func classify(r *http.Request, body []byte) call {
	c := call{service: "other", op: "other " + r.Method + " " + r.URL.Path, body: body}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		prefix, op, _ := strings.Cut(target, ".")
		prefix, _, _ = strings.Cut(prefix, "_") // DynamoDB_20120810 -> DynamoDB
		c.op = prefix + "." + op
		switch prefix {
		case "DynamoDB":
			c.service = "dynamodb"
		case "DynamoDBStreams":
			c.service = "streams"
		case "AWSEvents":
			c.service = "events"
		case "AWSCognitoIdentityProviderService":
			c.service = "cognito"
		}
		return c
	}
	if scope, _ := rolesession.SignedBy(r.Header.Get("Authorization")); scope != "" {
		c.service = scope
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
			c.form = form
			c.op = scope + "." + form.Get("Action")
		}
	}
	return c
}

// observeEvents counts the entries of a PutEvents by detail-type and finds
// CredentialsIssued entries that name only keys already audited. Called
// with p.mu held.
func (p *proxy) observeEvents(body []byte) {
	var in struct {
		Entries []struct {
			DetailType string
			Detail     string
		}
	}
	if json.Unmarshal(body, &in) != nil {
		return
	}
	for _, e := range in.Entries {
		p.counts.Events[e.DetailType]++
		if e.DetailType != "CredentialsIssued" {
			continue
		}
		var d struct {
			AccessKeyIDs []string `json:"accessKeyIds"`
		}
		if json.Unmarshal([]byte(e.Detail), &d) != nil || len(d.AccessKeyIDs) == 0 {
			continue
		}
		seen := true
		for _, k := range d.AccessKeyIDs {
			seen = seen && p.audited[k]
			p.audited[k] = true
		}
		if seen {
			p.counts.Reaudited++
		}
	}
}

// observeResponse records the access key of every successful AssumeRole
// with the user and session policy it was minted for.
func (p *proxy) observeResponse(resp *http.Response) error {
	c, _ := resp.Request.Context().Value(callKey{}).(call)
	if resp.StatusCode == http.StatusOK && (c.op == "iam.PutRolePolicy" || c.op == "iam.DeleteRolePolicy") && c.form.Get("PolicyName") == iamrole.PolicyName {
		p.observeDenyPolicy("0", c.form.Get("PolicyDocument"))
		return nil
	}
	if resp.StatusCode == http.StatusOK && (c.op == "iam.CreatePolicy" || c.op == "iam.CreatePolicyVersion") {
		name := c.form.Get("PolicyName") + c.form.Get("PolicyArn")
		if i := strings.LastIndex(name, "-revocations-"); i >= 0 {
			p.observeDenyPolicy(name[i+len("-revocations-"):], c.form.Get("PolicyDocument"))
		}
		return nil
	}
	if c.service != "sts" {
		return nil
	}
	key, s, ok, err := rolesession.FromResponse(c.form, resp)
	if !ok {
		return err
	}
	m := mint{User: s.User, Policy: s.Policy, UserTag: s.UserTag, Tag: s.Tag}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[key] = m
	p.issued[key] = s.Issued
	if p.minted[m] > 0 {
		p.counts.DuplicateMints++
	}
	p.minted[m]++
	return nil
}

// arrived counts an answer as denied on arrival when the revocation policy
// as last written denies any of its access keys.
func (p *proxy) arrived(accessKeyIDs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range accessKeyIDs {
		m, ok := p.keys[k]
		if !ok {
			continue
		}
		if !(rolesession.Session{User: m.User, UserTag: m.UserTag, Tag: m.Tag, Issued: p.issued[k]}).AllowedBy(p.deny) {
			p.counts.DeniedOnArrival++
			return
		}
	}
}

// allowAll is the policy of a role without a revocation policy.
func allowAll() iameval.Policy {
	pol, _ := rolesession.RevocationPolicy("")
	return pol
}

// observeDenyPolicy keeps the revocation pages written on the base role
// (docs/security.md "Revocation"), page by page; an empty doc (the policy deleted)
// denies nothing.
func (p *proxy) observeDenyPolicy(page, doc string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pages[page] = doc
	var docs []string
	for _, k := range slices.Sorted(maps.Keys(p.pages)) {
		docs = append(docs, p.pages[k])
	}
	pol, err := rolesession.RevocationPolicy(docs...)
	if err != nil {
		return
	}
	p.deny = pol
}

// fault is what the proxy does to one request.
type fault struct {
	kind  string // "", "hang", "reset", "fail" or "delay"
	delay time.Duration
	until time.Time // end of the window, for hang
}

// roll decides a request's fault from the window armed now.
func (p *proxy) roll(service string) fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.window
	now := time.Now()
	if w.spec == nil || now.Before(w.start) || !now.Before(w.end) || !w.spec.applies(service) {
		return fault{}
	}
	s := w.spec
	x := p.rng.Float64()
	f := fault{delay: s.Latency, until: w.end}
	switch {
	case x < s.Hang:
		f.kind = "hang"
	case x < s.Hang+s.Reset:
		f.kind = "reset"
	case x < s.Hang+s.Reset+s.Fail:
		f.kind = "fail"
	case s.Latency > 0:
		f.kind = "delay"
	}
	if f.kind != "" {
		p.counts.Faults[f.kind]++
	}
	return f
}

// inject applies f and reports whether the request should still go to moto.
func (p *proxy) inject(w http.ResponseWriter, r *http.Request, c call, f fault) bool {
	switch f.kind {
	case "hang":
		// No answer until the caller gives up or the window closes, then
		// the connection drops: what a stuck network path looks like.
		t := time.NewTimer(time.Until(f.until))
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		reset(w)
		return false
	case "reset":
		reset(w)
		return false
	case "fail":
		unavailable(w, c)
		return false
	}
	t := time.NewTimer(f.delay)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return false
	case <-t.C:
		return true
	}
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("proxy: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// unavailable answers 503 in the request's own protocol, as AWS does when
// it sheds load.
func unavailable(w http.ResponseWriter, c call) {
	if c.form != nil {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>injected by the load generator</Message></Error><RequestId>load</RequestId></ErrorResponse>`)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, `{"__type":"ServiceUnavailable","message":"injected by the load generator"}`)
}
