package credentials_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
)

// Example serves the endpoint over plain HTTP, as the local stack does. In
// the function the dependencies are jwtauth, ddbstore, stsissuer and
// ebaudit; here small stand-ins play them.
func Example() {
	svc := &credentials.Service{
		Verifier: verifierFunc(func(_ context.Context, token string) (broker.Principal, error) {
			if token != "alice-token" {
				return broker.Principal{}, broker.Errorf(broker.Unauthenticated, "verify", "token expired")
			}
			return broker.Principal{UserID: "alice-sub"}, nil
		}),
		Policies: policyReaderFunc(func(_ context.Context, user string) (broker.UserPolicy, error) {
			return broker.UserPolicy{
				UserID:  user,
				Version: "v1.example",
				Grants:  []broker.Grant{{Bucket: "genomics-raw", Access: broker.Read, Projects: []string{"genomics"}}},
				Sets:    []broker.PolicySet{{Policy: `{"Version":"2012-10-17","Statement":[]}`, Grants: []int{0}}},
			}, nil
		}),
		Issuer: issuerFunc(func(_ context.Context, req broker.IssueRequest) (broker.Credentials, error) {
			return broker.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", SessionToken: "token",
				Expiration: time.Date(2025, 3, 14, 9, 41, 53, 0, time.UTC)}, nil
		}),
		Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil }),
		Cache:   credentials.NewCache(1024, nil),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	srv := httptest.NewServer(credentials.NewHTTPHandler(svc.Handle))
	defer srv.Close()

	for _, token := range []string{"alice-token", "stale-token"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/auths/resources", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
		if c := resp.Header.Get("WWW-Authenticate"); c != "" {
			fmt.Println(c)
		}
	}
	// Output:
	// 200 {"userId":"alice-sub","policyVersion":"v1.example","expiration":"2025-03-14T09:41:53Z","credentialSets":[{"accessKeyId":"ASIAEXAMPLE","secretAccessKey":"secret","sessionToken":"token","expiration":"2025-03-14T09:41:53Z","issued":"2025-03-14T09:26:53Z","grants":[{"bucket":"genomics-raw","prefix":"","access":"read","projects":["genomics"]}]}]}
	// 401 {"error":"invalid_token","message":"token expired"}
	// Bearer realm="credbroker", error="invalid_token", error_description="token expired"
}
