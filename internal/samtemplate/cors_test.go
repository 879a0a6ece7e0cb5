package samtemplate_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// The browser module sends Authorization and Cache-Control (both need a
// preflight) and reads Retry-After and WWW-Authenticate from errors; the
// local stack answers its demo page with this same configuration.
func TestCorsAllowsWhatTheBrowserModuleSendsAndReads(t *testing.T) {
	got, err := mustLoad(t).LocalCors("http://127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	want := samtemplate.Cors{
		AllowOrigins:  []string{"http://127.0.0.1:8081"},
		AllowMethods:  []string{"GET"},
		AllowHeaders:  []string{"Authorization", "Cache-Control"},
		ExposeHeaders: []string{"Retry-After", "WWW-Authenticate"},
		MaxAge:        600,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CorsConfiguration (-want +got):\n%s", diff)
	}
}

func TestCorsRefusesOriginsTheTemplateRefuses(t *testing.T) {
	tpl := mustLoad(t)
	for _, origin := range []string{"*", "http://app.example.com", "https://app.example.com/", "http://127.0.0.1:8081/demo"} {
		t.Run(origin, func(t *testing.T) {
			if c, err := tpl.LocalCors(origin); broker.KindOf(err) != broker.Invalid {
				t.Errorf("LocalCors(%q) = %+v, %v; want an Invalid error", origin, c, err)
			}
		})
	}
}

func TestNoAllowedOriginsMeansNoCors(t *testing.T) {
	s, err := mustLoad(t).Stack(samtemplate.LocalEnv())
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, err := s.HTTPAPICors(); ok || err != nil {
		t.Errorf("HTTPAPICors() = %+v, %v, %v; want none", c, ok, err)
	}
}
