package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The exchange with the endpoint: one GET, the token refreshed once on a
// 401, 503 and 429 retried after their Retry-After, and error answers
// turned into typed errors.

// transient reports whether err may pass by itself: the endpoint or the
// network is down, as opposed to a refusal.
func transient(err error) bool {
	var ee *EndpointError
	if errors.As(err, &ee) {
		return ee.Status >= 500 || ee.Status == 429
	}
	var ue *url.Error
	return errors.As(err, &ue) && !errors.Is(err, context.Canceled)
}

// fetch asks the endpoint, refreshing the token once on 401 and retrying
// 503 and 429 within the retry budget.
func (c *Client) fetch(ctx context.Context, project string, noCache bool) (*Answer, error) {
	token, err := c.tokens.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("credbroker: access token: %w", err)
	}
	refreshed, revoked := false, false
	retries := 0
	var waited time.Duration
	for {
		status, header, body, err := c.do(ctx, project, token, noCache)
		if err != nil {
			return nil, err
		}
		if status == http.StatusOK {
			a, err := parseAnswer(body)
			if err != nil {
				return nil, err
			}
			now := c.o.Now()
			if !a.Expiration.After(now) {
				return nil, malformed("the credentials expired at %s, before they arrived (%s by this machine's clock): check the clock",
					a.Expiration.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
			c.mu.Lock()
			c.cutoffs.learn(a)
			denied, all := c.cutoffs.denies(a), c.cutoffs.all
			c.mu.Unlock()
			if !denied {
				return a, nil
			}
			// Another instance of the endpoint told of a revocation this
			// one has not read yet: ask once more for fresh credentials,
			// after the fallback's cutoff has passed.
			if revoked {
				return nil, errRevokedAnswer
			}
			revoked, noCache = true, true
			if err := c.o.Sleep(ctx, min(max(all.Sub(now), time.Second), c.o.MaxRetryWait)); err != nil {
				return nil, fmt.Errorf("%w (gave up waiting to retry: %w)", errRevokedAnswer, err)
			}
			continue
		}
		ee := endpointError(status, header, body, c.o.Now())
		switch {
		case status == http.StatusUnauthorized && !refreshed:
			refreshed = true
			if token, err = c.tokens.Refresh(ctx); err != nil {
				return nil, fmt.Errorf("%w; refreshing the token failed: %w", ee, err)
			}
			continue
		case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
			d := ee.RetryAfter
			if d <= 0 {
				d = c.o.Backoff(retries + 1) // API Gateway's 429 carries no Retry-After
			}
			if retries >= c.o.MaxRetries || waited+d > c.o.MaxRetryWait {
				return nil, ee
			}
			if err := c.o.Sleep(ctx, d); err != nil {
				return nil, fmt.Errorf("%w (gave up waiting to retry: %w)", ee, err)
			}
			waited += d
			retries++
			continue
		}
		return nil, ee
	}
}

// maxErrorBytes bounds what is read of an error answer.
const maxErrorBytes = 64 << 10

func (c *Client) do(ctx context.Context, project, token string, noCache bool) (int, http.Header, []byte, error) {
	u := c.endpoint
	if project != "" {
		u += "?" + url.Values{"project": {project}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("credbroker: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	if c.o.UserAgent != "" {
		req.Header.Set("User-Agent", c.o.UserAgent)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("credbroker: %w", err)
	}
	defer resp.Body.Close()
	limit := int64(maxErrorBytes)
	if resp.StatusCode == http.StatusOK {
		limit = maxAnswerBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("credbroker: read the answer of %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		if resp.StatusCode == http.StatusOK {
			return 0, nil, nil, malformed("larger than %d bytes", limit)
		}
		body = body[:limit]
	}
	return resp.StatusCode, resp.Header, body, nil
}

// endpointError reads an error answer: {"error": code, "message": text}
// from the endpoint, or whatever a gateway in front of it sent.
func endpointError(status int, h http.Header, body []byte, now time.Time) *EndpointError {
	var b struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &b)
	return &EndpointError{
		Status:     status,
		Code:       cleanMessage(b.Error),
		Message:    cleanMessage(b.Message),
		RetryAfter: retryAfter(h.Get("Retry-After"), now),
	}
}

// retryAfter reads Retry-After: delay-seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		return time.Duration(max(n, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
