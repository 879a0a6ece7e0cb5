// Package motoserver starts and stops a moto_server process on loopback. The
// test wrapper (make test) and the local stack (make run) both use it.
package motoserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// ErrNotInstalled means moto_server is not on PATH.
var ErrNotInstalled = errors.New("moto_server not found on PATH: install it with `python3 -m pip install 'moto[server]==5.2.1'` and make sure pip's script directory is on your PATH")

// Server is a running moto_server.
type Server struct {
	URL  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs moto_server on 127.0.0.1:port (a free port when port is 0),
// waits until it answers, and returns it. Output goes to logw.
func Start(ctx context.Context, port int, logw io.Writer) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	} else if err := checkFree(port); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logw, logw
	// Own process group, so Stop also ends anything moto forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls moto's own API until it answers or the process exits.
func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("moto_server exited before it was ready: %v", s.err)
		case <-ctx.Done():
			return fmt.Errorf("moto_server on port %d not ready: %w", s.Port, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Pid is the process id of moto_server (the leader of its process group),
// for tools that measure its CPU time.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is how the process exited, once Done is closed.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// FreePort returns a loopback port nothing listens on now.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ErrPortInUse means the asked-for port is taken.
var ErrPortInUse = errors.New("port in use")

func checkFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		// Only a taken port is ErrPortInUse (its own exit code); anything
		// else, such as EACCES below 1024, keeps its own message.
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("127.0.0.1:%d: %w", port, ErrPortInUse)
		}
		return err
	}
	return l.Close()
}

// CheckFree returns nil when 127.0.0.1:port can be listened on,
// ErrPortInUse when it is taken, and the listen error otherwise.
func CheckFree(port int) error { return checkFree(port) }
