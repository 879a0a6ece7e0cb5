package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// faultSpec is the -faults flag: a window of the run during which the
// proxy between the stack and moto misbehaves, e.g.
// "at=20s,for=10s,latency=300ms,reset=0.1,hang=0.05,fail=0.2,only=sts+events".
// Each request in the window (of the listed services; all by default) is
// held until its caller gives up (hang), reset (reset) or refused with a
// 503 (fail) with the given probabilities; every other one waits latency
// before going on to moto.
type faultSpec struct {
	At, For           time.Duration
	Latency           time.Duration
	Hang, Reset, Fail float64
	Only              []string
	raw               string
}

// faultWindow is a spec armed at absolute times.
type faultWindow struct {
	start, end time.Time
	spec       *faultSpec
}

var faultServices = []string{"dynamodb", "streams", "sts", "events", "cognito", "other"}

// parseFaults reads a spec for a run of the given duration. The window
// defaults to the middle third of the run, so that the run shows the
// stack before, during and after it.
func parseFaults(raw string, duration time.Duration) (*faultSpec, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	s := &faultSpec{At: duration / 3, For: duration / 3, raw: raw}
	for field := range strings.SplitSeq(raw, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return nil, fmt.Errorf("fault %q is not key=value", field)
		}
		var err error
		switch k {
		case "at":
			s.At, err = time.ParseDuration(v)
		case "for":
			s.For, err = time.ParseDuration(v)
		case "latency":
			s.Latency, err = time.ParseDuration(v)
		case "hang":
			s.Hang, err = probability(v)
		case "reset":
			s.Reset, err = probability(v)
		case "fail":
			s.Fail, err = probability(v)
		case "only":
			for svc := range strings.SplitSeq(v, "+") {
				if !slices.Contains(faultServices, svc) {
					return nil, fmt.Errorf("fault only=%q: %q is not one of %s", v, svc, strings.Join(faultServices, ", "))
				}
				s.Only = append(s.Only, svc)
			}
		default:
			return nil, fmt.Errorf("unknown fault %q (at, for, latency, hang, reset, fail, only)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("fault %s=%q: %v", k, v, err)
		}
	}
	switch {
	case s.At < 0 || s.For <= 0 || s.Latency < 0:
		return nil, fmt.Errorf("faults %q: at must not be negative, for must be positive", raw)
	case s.At+s.For >= duration:
		return nil, fmt.Errorf("faults %q: the window must end before the run does (-duration %v), so that recovery is measured", raw, duration)
	case s.Hang+s.Reset+s.Fail > 1:
		return nil, fmt.Errorf("faults %q: hang + reset + fail exceed 1", raw)
	case s.Hang+s.Reset+s.Fail == 0 && s.Latency == 0:
		return nil, fmt.Errorf("faults %q: no fault (set latency, hang, reset or fail)", raw)
	}
	return s, nil
}

func probability(v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	if err == nil && (p < 0 || p > 1) {
		err = fmt.Errorf("not a probability in 0..1")
	}
	return p, err
}

func (s *faultSpec) applies(service string) bool {
	return len(s.Only) == 0 || slices.Contains(s.Only, service)
}

func (s *faultSpec) String() string {
	if s == nil {
		return ""
	}
	return s.raw
}
