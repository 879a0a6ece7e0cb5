package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

// judge stands in front of moto, which enforces no IAM, on the local
// stack: the stack's own AWS calls go through it, so it sees every
// AssumeRole (the session's user, tags, session policy and issue time,
// internal/testkit/rolesession), and the smoke check's S3 calls go through
// it, so it judges each one made with a session's access key before moto
// sees it: the session policy, the base role's policies (ceiling and
// revocation pages) and boundary as moto's IAM holds them at that moment
// (iameval). A denied call gets S3's 403 AccessDenied and never reaches
// moto. Anything else (the operator's calls, signed with other keys) goes
// through unjudged.
type judge struct {
	URL string

	rp  *httputil.ReverseProxy
	srv *http.Server

	mu sync.Mutex
	// role reads the base role's policies now; nil until setRole.
	role     func(context.Context) (iameval.Role, error)
	sessions map[string]rolesession.Session // by access key id
	judged   map[string]int                 // S3 calls judged, by access key id
	denied   map[string]int                 // of which denied
}

// newJudge listens on a free loopback port. It denies every S3 call of a
// session until setRole names the base role.
func newJudge(motoURL string) (*judge, error) {
	target, err := url.Parse(motoURL)
	if err != nil {
		return nil, err
	}
	j := &judge{
		sessions: map[string]rolesession.Session{},
		judged:   map[string]int{},
		denied:   map[string]int{},
	}
	j.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // signed for the judge's host
		},
		ModifyResponse: j.observe,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	j.URL = "http://" + ln.Addr().String()
	j.srv = &http.Server{Handler: http.HandlerFunc(j.serve), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = j.srv.Serve(ln) }()
	return j, nil
}

func (j *judge) Close() { _ = j.srv.Close() }

// setRole names the base role, read from IAM (moto) at every call judged.
func (j *judge) setRole(iamc *iam.Client, roleName string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.role = func(ctx context.Context) (iameval.Role, error) {
		r, err := rolesession.ReadRole(ctx, iamc, roleName)
		if err != nil {
			return iameval.Role{}, err
		}
		return r.Role()
	}
}

// stats returns how many S3 calls made with the access key were judged,
// and how many of them denied.
func (j *judge) stats(accessKeyID string) (judged, denied int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.judged[accessKeyID], j.denied[accessKeyID]
}

// knows reports whether the judge saw the access key minted.
func (j *judge) knows(accessKeyID string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.sessions[accessKeyID]
	return ok
}

type formKey struct{}

func (j *judge) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	service, key := rolesession.SignedBy(r.Header.Get("Authorization"))
	ctx := r.Context()
	switch service {
	case "sts":
		if form, err := url.ParseQuery(string(body)); err == nil {
			ctx = context.WithValue(ctx, formKey{}, form)
		}
	case "s3":
		j.mu.Lock()
		s, ok := j.sessions[key]
		j.mu.Unlock()
		if ok {
			allowed, reason := j.allows(ctx, s, s3Request(r))
			j.mu.Lock()
			j.judged[key]++
			if !allowed {
				j.denied[key]++
			}
			j.mu.Unlock()
			if !allowed {
				accessDenied(w, reason)
				return
			}
		}
	}
	j.rp.ServeHTTP(w, r.WithContext(ctx))
}

// allows judges one call of session s as IAM would.
func (j *judge) allows(ctx context.Context, s rolesession.Session, req iameval.Request) (bool, string) {
	j.mu.Lock()
	read := j.role
	j.mu.Unlock()
	if read == nil {
		return false, "the judge does not know the base role yet"
	}
	role, err := read(ctx)
	if err != nil {
		return false, "the judge could not read the base role: " + err.Error()
	}
	session, err := iameval.Parse(s.Policy)
	if err != nil {
		return false, "the judge could not parse the session policy: " + err.Error()
	}
	ctxKeys := s.Context()
	for k, v := range req.Context {
		ctxKeys[k] = v
	}
	// What S3 adds to every request on AWS: the smoke check's calls would
	// go over TLS, to buckets of the stack's own account.
	ctxKeys["aws:SecureTransport"] = "true"
	ctxKeys["s3:ResourceAccount"] = samtemplate.LocalAccountID
	req.Context = ctxKeys
	if !role.Allows(session, req) {
		return false, fmt.Sprintf("%s on %s is not allowed to %s (judged by the smoke check's IAM evaluator)", req.Action, req.Resource, s.User)
	}
	return true, ""
}

// observe records the session of every successful AssumeRole.
func (j *judge) observe(resp *http.Response) error {
	form, _ := resp.Request.Context().Value(formKey{}).(url.Values)
	key, s, ok, err := rolesession.FromResponse(form, resp)
	if ok {
		j.mu.Lock()
		j.sessions[key] = s
		j.mu.Unlock()
	}
	return err
}

// s3Request names the IAM action and resource of a path-style S3 call.
// What the smoke check does not make (subresources, bucket operations
// other than listing) is "s3:Unsupported", which no policy allows.
func s3Request(r *http.Request) iameval.Request {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	q.Del("x-id") // the SDK names the operation; IAM does not care
	if key == "" {
		if r.Method == http.MethodGet && (len(q) == 0 || q.Has("list-type") || q.Has("prefix")) {
			return iameval.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::" + bucket,
				Context: map[string]string{"s3:prefix": q.Get("prefix")}}
		}
		return iameval.Request{Action: "s3:Unsupported", Resource: "arn:aws:s3:::" + bucket}
	}
	res := "arn:aws:s3:::" + bucket + "/" + key
	if len(q) > 0 {
		return iameval.Request{Action: "s3:Unsupported", Resource: res}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return iameval.Request{Action: "s3:GetObject", Resource: res}
	case http.MethodPut:
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return iameval.Request{Action: "s3:Unsupported", Resource: res}
		}
		return iameval.Request{Action: "s3:PutObject", Resource: res}
	case http.MethodDelete:
		return iameval.Request{Action: "s3:DeleteObject", Resource: res}
	}
	return iameval.Request{Action: "s3:Unsupported", Resource: res}
}

// accessDenied answers as S3 does when IAM denies a call.
func accessDenied(w http.ResponseWriter, reason string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>AccessDenied</Code><Message>%s</Message><RequestId>smoke</RequestId></Error>`, xmlEscape(reason))
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
