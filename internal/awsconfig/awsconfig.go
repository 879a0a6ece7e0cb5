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
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// MaxAttempts bounds the SDK's retries of throttling and 5xx errors.
const MaxAttempts = 3

// Load reads the default configuration (environment, shared files, the
// Lambda role). AWS_ENDPOINT_URL, when set, points every client at one
// endpoint.
func Load(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx, append([]func(*config.LoadOptions) error{
		config.WithRetryer(retryer),
		config.WithHTTPClient(HTTPClient()),
	}, opts...)...)
}

// Local is the configuration of a tool or of the local stack talking to
// moto on loopback: the same retries and timeouts as Load, and static
// credentials, because moto takes any and nothing from the environment
// (profiles, a real account's keys) should be read or sent.
func Local(region, endpoint string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:   HTTPClient(),
		Retryer:      retryer,
	}
}

func retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = MaxAttempts })
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
