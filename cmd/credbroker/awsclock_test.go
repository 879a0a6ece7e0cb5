package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// stsAt is a stand-in for STS whose clock reads at: it answers
// GetCallerIdentity with that Date header.
func stsAt(t *testing.T, at time.Time) aws.Config {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", at.UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>` +
			`<Arn>arn:aws:iam::123456789012:user/op</Arn><UserId>AIDA</UserId><Account>123456789012</Account>` +
			`</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`))
	}))
	t.Cleanup(srv.Close)
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}
}

// Whatever this machine's clock says, the revocation runs on AWS's time,
// never behind it.
func TestTheOperatorsRevocationFollowsAWSsClock(t *testing.T) {
	aws := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		local time.Time
	}{
		{"a machine 30 s slow", aws.Add(-30 * time.Second)},
		{"a machine 20 min fast", aws.Add(20 * time.Minute)},
		{"a machine on time", aws.Add(400 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, _, err := awsClock(context.Background(), stsAt(t, aws), func() time.Time { return tc.local })
			if err != nil {
				t.Fatal(err)
			}
			// AWS's clock read somewhere in [aws, aws+1s) while the call
			// was under way; the result must not be behind any of it.
			if got := now(); got.Before(aws.Add(time.Second)) || got.After(aws.Add(2*time.Second)) {
				t.Errorf("now() = %v, want within a second after %v", got, aws.Add(time.Second))
			}
		})
	}
}
