// Package logging builds the JSON slog logger every function writes to
// stdout, where Lambda's JSON log format and CloudWatch pick it up.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// New returns a JSON logger at the named level ("DEBUG", "INFO", "WARN",
// "ERROR"; INFO when empty or unknown) tagged with the function's name
// (untagged when function is "", for a caller that tags per component).
func New(w io.Writer, level, function string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(level)))); err != nil {
		l = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	if function != "" {
		log = log.With("function", function)
	}
	return log
}
