package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
)

// target is the stack under load.
type target struct {
	info localstack.Info
	// aws reaches moto directly: the generator's own calls.
	aws aws.Config
	// proxy counts and faults the stack's calls; nil for a stack started
	// elsewhere (-stack), whose calls the generator cannot see.
	proxy   *proxy
	motoPid int // 0 when moto was not started here
	// stopped receives why the in-process stack stopped on its own (nil
	// once it is stopped by the run); nil for a stack started elsewhere.
	stopped <-chan error
	logPath string
	// keepLogs keeps the in-process stack's directory (moto's and the
	// stack's logs) when stop runs.
	keepLogs bool
	stop     func()
}

// openTarget reads a running stack's stack.json, or starts a stack in this
// process (moto, unless -moto names one, and the local stack of `make
// run`, its AWS clients pointed at the proxy).
func openTarget(ctx context.Context, o options, id string, progress io.Writer) (*target, error) {
	if o.Stack != "" {
		raw, err := os.ReadFile(o.Stack)
		if err != nil {
			return nil, fmt.Errorf("%w (start the local stack with `make run`, or leave STACK empty to start one in process)", err)
		}
		var info localstack.Info
		if err := json.Unmarshal(raw, &info); err != nil {
			return nil, fmt.Errorf("%s is not a stack file: %w", o.Stack, err)
		}
		if info.APIURL == "" || info.AWSEndpoint == "" || info.PolicyTable == "" || info.UserPoolClientID == "" {
			return nil, fmt.Errorf("%s lacks apiUrl, awsEndpoint, policyTable or userPoolClientId", o.Stack)
		}
		return &target{info: info, aws: awsconfig.Local(info.Region, info.AWSEndpoint), stop: func() {}}, nil
	}

	dir, err := os.MkdirTemp("", "credbroker-load-"+id+"-")
	if err != nil {
		return nil, err
	}
	t := &target{logPath: filepath.Join(dir, "stack.log")}
	var closers []func()
	t.stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		// The logs of moto and the stack explain a failed run; a clean
		// one leaves nothing behind.
		if t.keepLogs {
			fmt.Fprintf(progress, "load: logs kept in %s\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}
	fail := func(err error) (*target, error) {
		t.keepLogs = true
		t.stop()
		return nil, err
	}
	motoURL := o.Moto
	if motoURL == "" {
		logf, err := os.Create(filepath.Join(dir, "moto.log"))
		if err != nil {
			return fail(err)
		}
		srv, err := motoserver.Start(ctx, 0, logf)
		if err != nil {
			return fail(fmt.Errorf("moto: %w", err))
		}
		closers = append(closers, srv.Stop)
		motoURL, t.motoPid = srv.URL, srv.Pid()
		fmt.Fprintf(progress, "load: moto_server at %s (log %s)\n", motoURL, logf.Name())
	}
	t.proxy, err = newProxy(motoURL, uint64(o.Seed))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, t.proxy.Close)
	logf, err := os.Create(t.logPath)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = logf.Close() })
	port, err := motoserver.FreePort()
	if err != nil {
		return fail(err)
	}
	st, err := localstack.Start(ctx, localstack.Options{
		Moto: motoURL, Port: port, Dir: dir, Name: "credbroker-load-" + id,
		StackEndpoint: t.proxy.URL, Archive: o.Archive,
		Logger: slog.New(slog.NewJSONHandler(logf, nil)),
	})
	if err != nil {
		return fail(fmt.Errorf("local stack: %w", err))
	}
	closers = append(closers, st.Stop)
	// A stack whose poller gave up goes on answering from a policy table
	// nothing updates: the run must say so.
	waitCtx, cancel := context.WithCancel(context.Background())
	closers = append(closers, cancel)
	stopped := make(chan error, 1)
	go func() { stopped <- st.Wait(waitCtx) }()
	t.stopped = stopped
	t.info = st.Info
	t.aws = awsconfig.Local(st.Info.Region, motoURL)
	fmt.Fprintf(progress, "load: local stack at %s, its AWS calls through %s (log %s)\n", st.Info.APIURL, t.proxy.URL, t.logPath)
	return t, nil
}

// cpuTime is the CPU time used so far by the process group led by pid
// (moto_server and anything it forked), from /proc; 0 when unreadable.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the command (which ends at the last ')'): state,
		// ppid, pgrp, ..., utime (12th), stime (13th).
		i := strings.LastIndexByte(string(raw), ')')
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 13 || f[2] != strconv.Itoa(pid) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	// Linux reports in USER_HZ, 100 on every mainstream architecture.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// selfCPU is this process's CPU time: the stack in process and the
// generator together.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stackStopped returns why the in-process stack stopped on its own, if it
// did.
func (t *target) stackStopped() error {
	select {
	case err := <-t.stopped:
		return err
	default:
		return nil
	}
}
