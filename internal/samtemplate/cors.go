package samtemplate

import (
	"fmt"
	"maps"
	"strconv"

	"github.com/credbroker/credbroker/internal/broker"
)

// Cors is the HTTP API's CorsConfiguration: what API Gateway answers a
// browser's preflight with and adds to every answer to an allowed origin.
type Cors struct {
	AllowOrigins, AllowMethods, AllowHeaders, ExposeHeaders []string
	MaxAge                                                  int // seconds
}

// LocalCors returns HttpApi's CorsConfiguration as a stack deployed with
// AllowedOrigins=origin gets it, in the local stack's environment: the local
// stack answers its demo page's origin with exactly that. An origin the
// template's AllowedOrigins refuses is a broker.Invalid error.
func (t *Template) LocalCors(origin string) (Cors, error) {
	env := LocalEnv()
	env.Params = maps.Clone(env.Params)
	env.Params["AllowedOrigins"] = origin
	s, err := t.Stack(env)
	if err != nil {
		return Cors{}, err
	}
	c, ok, err := s.HTTPAPICors()
	if err != nil {
		return Cors{}, err
	}
	if !ok {
		return Cors{}, broker.Errorf(broker.Internal, "samtemplate.LocalCors", "HttpApi has no CorsConfiguration with AllowedOrigins=%q", origin)
	}
	return c, nil
}

// HTTPAPICors returns the stack's HttpApi CorsConfiguration, and false when
// the stack configures none (no AllowedOrigins).
func (s *Stack) HTTPAPICors() (Cors, bool, error) {
	const op = "samtemplate.HTTPAPICors"
	r, _, err := s.Resource("HttpApi")
	if err != nil {
		return Cors{}, false, err
	}
	raw, ok := r.Properties["CorsConfiguration"].(map[string]any)
	if !ok {
		return Cors{}, false, nil
	}
	var c Cors
	for _, f := range []struct {
		key string
		dst *[]string
	}{
		{"AllowOrigins", &c.AllowOrigins}, {"AllowMethods", &c.AllowMethods},
		{"AllowHeaders", &c.AllowHeaders}, {"ExposeHeaders", &c.ExposeHeaders},
	} {
		v, present := raw[f.key]
		if !present {
			continue
		}
		if *f.dst, err = stringList(v); err != nil {
			return Cors{}, false, broker.Wrap(broker.Internal, op, fmt.Errorf("HttpApi.CorsConfiguration.%s: %w", f.key, err))
		}
	}
	if v, present := raw["MaxAge"]; present {
		if c.MaxAge, err = strconv.Atoi(scalarString(v)); err != nil {
			return Cors{}, false, broker.Wrap(broker.Internal, op, fmt.Errorf("HttpApi.CorsConfiguration.MaxAge: %w", err))
		}
	}
	return c, true, nil
}
