package broker_test

import (
	"errors"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name      string
		header    string
		want      string // token, or "" when rejected
		message   string
		presented bool
	}{
		{"bearer token is accepted", "Bearer a.b.c", "a.b.c", "", true},
		{"lowercase scheme is accepted", "bearer a.b.c", "a.b.c", "", true},
		{"uppercase scheme is accepted", "BEARER a.b.c", "a.b.c", "", true},
		{"b64token characters are accepted", "Bearer aZ09-._~+/==", "aZ09-._~+/==", "", true},
		{"empty header is a missing token", "", "", "missing bearer token", false},
		{"basic scheme is not a bearer token", "Basic dXNlcjpwYXNz", "", "authorization header is not a bearer token", false},
		{"scheme alone is a missing token", "Bearer", "", "missing bearer token", false},
		{"scheme and space alone is a missing token", "Bearer ", "", "missing bearer token", false},
		{"two spaces are rejected", "Bearer  a.b.c", "", "authorization header is not a bearer token", true},
		{"two tokens are rejected", "Bearer a.b.c d.e.f", "", "authorization header is not a bearer token", true},
		{"padding inside the token is rejected", "Bearer a=b", "", "authorization header is not a bearer token", true},
		{"scheme prefix without separator is rejected", "Bearera.b.c", "", "authorization header is not a bearer token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := broker.BearerToken(tt.header)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("BearerToken(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
				}
				return
			}
			if k := broker.KindOf(err); k != broker.Unauthenticated {
				t.Errorf("kind %v, want unauthenticated (err %v)", k, err)
			}
			if msg := broker.MessageOf(err); msg != tt.message {
				t.Errorf("message %q, want %q", msg, tt.message)
			}
			if presented := !errors.Is(err, broker.ErrNoToken); presented != tt.presented {
				t.Errorf("presented = %v, want %v", presented, tt.presented)
			}
		})
	}
}
