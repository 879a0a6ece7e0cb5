// Package awsconfig loads the AWS SDK configuration every function and tool
// shares: the standard retryer with a bounded number of attempts and HTTP
// timeouts, so that a slow dependency turns into an error inside the
// caller's deadline instead of a hung invocation.
package awsconfig

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts bounds the SDK's retries of throttling and 5xx errors.
const MaxAttempts = 3

// Load reads the default configuration (environment, shared files, the
// Lambda role). AWS_ENDPOINT_URL, when set, points every client at one
// endpoint: that is how the local stack reaches moto.
func Load(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = MaxAttempts })
		}),
		config.WithHTTPClient(HTTPClient()),
	)
}

// HTTPClient is the SDK's transport with explicit timeouts.
func HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   3 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
		},
	}
}
