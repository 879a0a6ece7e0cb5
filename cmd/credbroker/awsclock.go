package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// awsClock returns a clock that follows AWS's rather than this machine's.
// A revocation's cutoff and the pruning of the deny list are times that
// STS and IAM compare with their own clocks (README "Revocation"): a laptop
// a few seconds slow would miss the newest credentials of the user being
// revoked, and one far ahead would prune other users' live entries. It asks
// STS who the caller is (allowed to everyone) and reads the Date header of
// the answer: AWS's time then lay within [Date, Date+1s), and the request
// was under way between sent and got, so local time plus (Date+1s-sent) is
// never behind AWS's. Being up to a second and a round trip ahead only
// moves a cutoff later, which denies a little more, and prunes an entry
// that much early against its one-minute margin.
func awsClock(ctx context.Context, cfg aws.Config, local func() time.Time) (func() time.Time, time.Duration, error) {
	rec := &dateRecorder{next: cfg.HTTPClient}
	if rec.next == nil {
		rec.next = awshttp.NewBuildableClient()
	}
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.HTTPClient = rec })
	sent := local()
	if _, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return nil, 0, fmt.Errorf("read AWS's clock (sts:GetCallerIdentity): %w", err)
	}
	date, ok := rec.last()
	if !ok {
		return nil, 0, fmt.Errorf("read AWS's clock: STS's answer carries no Date header")
	}
	offset := date.Add(time.Second).Sub(sent)
	return func() time.Time { return local().Add(offset) }, offset, nil
}

// dateRecorder keeps the Date header of the last answer it passed on.
type dateRecorder struct {
	next aws.HTTPClient
	mu   sync.Mutex
	date time.Time
	seen bool
}

func (d *dateRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(req)
	if err == nil {
		if t, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			d.mu.Lock()
			d.date, d.seen = t, true
			d.mu.Unlock()
		}
	}
	return resp, err
}

func (d *dateRecorder) last() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.date, d.seen
}
