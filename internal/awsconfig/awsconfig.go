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
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts bounds the SDK's retries of throttling and 5xx errors.
const MaxAttempts = 3

// Load reads the default configuration (environment, shared files, the
// Lambda role). AWS_ENDPOINT_URL, when set, points every client at one
// endpoint.
func Load(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx, append([]func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = MaxAttempts })
		}),
		config.WithHTTPClient(HTTPClient()),
	}, opts...)...)
}

// HTTPClient is the SDK's own buildable client (which honours
// AWS_CA_BUNDLE) with explicit timeouts: a stuck connection fails within a
// request's deadline and leaves time for the retries.
func HTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithTimeout(10 * time.Second).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 3 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = 3 * time.Second
			t.ResponseHeaderTimeout = 8 * time.Second
			t.IdleConnTimeout = 90 * time.Second
			t.MaxIdleConnsPerHost = 64
		})
}
