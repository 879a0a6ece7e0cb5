package jwtauth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/credbroker/credbroker/internal/broker"
)

// RSA modulus sizes accepted in the key set: at least 2048 bits, and at most
// 8192 so a hostile key set cannot make every verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// keyCache holds the RSA keys of one JWKS URL by kid.
type keyCache struct {
	url      string
	client   Doer
	interval time.Duration
	maxAge   time.Duration
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger

	flight singleflight.Group

	mu        sync.RWMutex
	keys      map[string]*rsa.PublicKey
	loaded    bool      // a fetch has succeeded
	loadedAt  time.Time // start of the last successful fetch
	lastFetch time.Time // start of the last fetch, successful or not
	lastErr   error     // the last fetch's error, nil once one succeeds
}

// key returns the key for kid. It fetches the key set when the cache is
// cold or its keys are older than the maximum age, and refreshes it once
// per interval when kid is unknown. Keys past their age are never used: a
// key the pool removed stops verifying tokens within that age, and while
// the key set cannot be fetched the answer is an outage (503), not a
// verdict on the token.
func (c *keyCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	k, due, failing := c.lookup(kid)
	if k != nil {
		return k, nil
	}
	if due {
		// The fetch runs on its own context so that one caller giving up
		// does not fail the others waiting for it.
		done := c.flight.DoChan("jwks", func() (any, error) {
			return nil, c.refresh(context.WithoutCancel(ctx), kid)
		})
		select {
		case <-ctx.Done():
			return nil, broker.Wrap(broker.Transient, "fetch signing keys", ctx.Err())
		case r := <-done:
			if r.Err != nil {
				return nil, r.Err
			}
		}
		if k, _, failing = c.lookup(kid); k != nil {
			return k, nil
		}
	}
	if failing != nil {
		// The key may be new (or the cached ones too old) and the key set
		// unreachable.
		return nil, &broker.Error{Kind: broker.Transient, Op: "fetch signing keys", Message: "signing keys unavailable", Err: failing}
	}
	return nil, reject("unknown signing key", fmt.Errorf("kid %q not in key set", kid))
}

// lookup returns the cached key for kid while the cached set is younger
// than the maximum age; otherwise whether a fetch is due (always while no
// fetch has succeeded, else once the last fetch is an interval old) and the
// last fetch's error.
func (c *keyCache) lookup(kid string) (key *rsa.PublicKey, due bool, failing error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	if k, ok := c.keys[kid]; ok && now.Sub(c.loadedAt) < c.maxAge {
		return k, false, nil
	}
	return nil, !c.loaded || now.Sub(c.lastFetch) >= c.interval, c.lastErr
}

// refresh fetches the key set unless a fetch that finished while the caller
// was queueing made it unnecessary; checking again here keeps a burst of
// unknown kids to one fetch.
func (c *keyCache) refresh(ctx context.Context, kid string) error {
	if k, due, _ := c.lookup(kid); k != nil || !due {
		return nil
	}
	started := c.now()
	keys, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastFetch, c.lastErr = started, err
	if err != nil {
		c.log.WarnContext(ctx, "jwks fetch failed", "url", c.url, "err", err, "cached_keys", len(c.keys))
		return &broker.Error{Kind: broker.Transient, Op: "fetch signing keys", Message: "signing keys unavailable", Err: err}
	}
	c.keys, c.loaded, c.loadedAt = keys, true, started
	c.log.DebugContext(ctx, "jwks fetched", "url", c.url, "keys", len(keys))
	return nil
}

func (c *keyCache) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("jwks is larger than %d bytes", MaxJWKSBytes)
	}
	return parseJWKS(body, c.log)
}

// jwk holds the members of a JSON Web Key (RFC 7517) that the cache reads.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS returns the usable keys of a key set. Unusable keys are skipped;
// a set without any usable key is an error, as Cognito's never is.
func parseJWKS(body []byte, log *slog.Logger) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for i, raw := range set.Keys {
		var k jwk
		err := json.Unmarshal(raw, &k)
		var pub *rsa.PublicKey
		if err == nil {
			pub, err = k.rsaKey()
		}
		if err == nil {
			if _, dup := keys[k.Kid]; dup {
				err = errors.New("duplicate kid")
			}
		}
		if err != nil {
			log.Debug("jwks key skipped", "index", i, "kid", truncate(k.Kid), "err", err)
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks has no usable RS256 key among %d", len(set.Keys))
	}
	return keys, nil
}

func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	switch {
	case k.Kty != "RSA":
		return nil, fmt.Errorf("kty %q", truncate(k.Kty))
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("use %q", truncate(k.Use))
	case k.Alg != "" && k.Alg != "RS256":
		return nil, fmt.Errorf("alg %q", truncate(k.Alg))
	case k.Kid == "" || len(k.Kid) > MaxKidBytes:
		return nil, errors.New("kid empty or too long")
	}
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		return nil, errors.New("n is not base64url")
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		return nil, errors.New("e is not base64url")
	}
	mod := new(big.Int).SetBytes(n)
	if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("modulus of %d bits", bits)
	}
	exp := new(big.Int).SetBytes(e)
	// crypto/rsa verifies only with 2 < e < 2^31 and e odd.
	if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 || exp.Bit(0) == 0 {
		return nil, errors.New("unsupported public exponent")
	}
	return &rsa.PublicKey{N: mod, E: int(exp.Int64())}, nil
}
