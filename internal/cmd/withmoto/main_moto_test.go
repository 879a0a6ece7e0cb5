//go:build integration

package main

import (
	"testing"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// With moto running, the command's own status is withmoto's; a command
// that cannot be started is the machine's problem (Environment).
func TestTheCommandsStatusPassesThrough(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"the command's status", []string{"sh", "-c", "exit 7"}, 7},
		{"a command not installed", []string{"withmoto-no-such-command"}, exitcode.Environment},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(tt.args); code != tt.want {
				t.Errorf("exit %d, want %d", code, tt.want)
			}
		})
	}
}
