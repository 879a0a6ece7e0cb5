// Command withmoto runs a command with a fresh moto_server on a free loopback
// port, exported to it as MOTO_ENDPOINT, and stops the server afterwards.
// `make test` runs the test suite through it.
//
// Its exit status is the command's own, or one of internal/exitcode's for
// what stopped it from running the command: Usage (no command given),
// Environment (moto_server not installed or not starting, the command not
// found, no log file), Failure (moto_server died during the run).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/motoserver"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withmoto -- command [args...]")
		os.Exit(exitcode.Usage)
	}
	os.Exit(run(args))
}

func run(args []string) int {
	logPath := filepath.Join(os.TempDir(), fmt.Sprintf("withmoto-%d.log", os.Getpid()))
	logf, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return exitcode.Environment
	}
	defer logf.Close()

	srv, err := motoserver.Start(context.Background(), 0, logf)
	if err != nil {
		// Not installed, or not starting: this machine is not ready.
		fmt.Fprintf(os.Stderr, "withmoto: %v (log %s)\n", err, logPath)
		return exitcode.Environment
	}
	defer srv.Stop()
	fmt.Fprintf(os.Stderr, "withmoto: moto_server at %s (log %s)\n", srv.URL, logPath)

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "MOTO_ENDPOINT="+srv.URL)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return exitcode.Environment
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	select {
	case <-srv.Done():
		fmt.Fprintf(os.Stderr, "withmoto: moto_server died during the run; see %s\n", logPath)
		return exitcode.Failure
	default:
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return exitcode.Failure
	}
	return exitcode.OK
}
