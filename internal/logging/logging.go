// Package logging builds the JSON slog logger every function writes to
// stdout, where Lambda's JSON log format and CloudWatch pick it up.
//
// Lambda reads two keys of a JSON line: "level" (slog's DEBUG, INFO, WARN,
// ERROR) and "timestamp" in RFC 3339. A line without a timestamp it can
// read is stamped with the arrival time and taken for INFO, so the logger
// writes "timestamp" instead of slog's "time". The level filtering is the
// logger's own (CREDBROKER_LOG_LEVEL): the template lets Lambda pass every line,
// because the metric lines (internal/emf) carry no level at all.
package logging

import (
	"io"
	"log/slog"
	"time"
)

// TimeKey is the key of each line's time, in RFC 3339 (UTC, nanoseconds).
const TimeKey = "timestamp"

// New returns a JSON logger at level (configurations read CREDBROKER_LOG_LEVEL with
// envconf) tagged with the function's name (untagged when function is "",
// for a caller that tags per component).
func New(w io.Writer, level slog.Level, function string) *slog.Logger {
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lambdaTime}))
	if function != "" {
		log = log.With("function", function)
	}
	return log
}

func lambdaTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(TimeKey, a.Value.Time().UTC().Format(time.RFC3339Nano))
	}
	return a
}
