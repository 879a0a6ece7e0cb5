package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
)

// openLocal starts the judge in front of moto and a local stack on free
// ports (and moto_server, unless -moto names one) whose own AWS calls go through the
// judge; the operator's calls go to moto directly, the user's S3 calls
// through the judge.
func openLocal(ctx context.Context, o options, progress io.Writer) (*target, func(bool), error) {
	id := newID()
	dir, err := os.MkdirTemp("", "credbroker-smoke-"+id+"-")
	if err != nil {
		return nil, nil, err
	}
	var closers []func()
	stop := func(keepLogs bool) {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		if keepLogs {
			fmt.Fprintf(progress, "smoke: logs kept in %s\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}
	fail := func(err error) (*target, func(bool), error) {
		stop(true)
		return nil, nil, err
	}
	// Without -moto the local stack starts moto_server itself on a free
	// port (its log in dir), which the judge forwards to.
	motoURL, motoPort := o.Moto, 0
	if motoURL == "" {
		if motoPort, err = motoserver.FreePort(); err != nil {
			return fail(err)
		}
		motoURL = fmt.Sprintf("http://127.0.0.1:%d", motoPort)
	}
	j, err := newJudge(motoURL)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, j.Close)
	port, err := motoserver.FreePort()
	if err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stack.log"))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = logf.Close() })
	// The base role's ceiling allows the buckets named <stack>-*.
	name := "credbroker-smoke-" + id
	st, err := localstack.Start(ctx, localstack.Options{
		Moto: o.Moto, MotoPort: motoPort, Port: port, Dir: dir, Name: name,
		StackEndpoint: j.URL, Logger: slog.New(slog.NewJSONHandler(logf, nil)), Out: io.Discard,
	})
	if err != nil {
		return fail(fmt.Errorf("local stack: %w", err))
	}
	closers = append(closers, st.Stop)
	admin := awsconfig.Local(st.Info.Region, motoURL)
	roleName, err := iamrole.NameFromARN(st.Info.BaseRoleARN)
	if err != nil {
		return fail(err)
	}
	j.setRole(iam.NewFromConfig(admin), roleName)
	fmt.Fprintf(progress, "smoke: local stack at %s; S3 calls judged by the IAM evaluator at %s in front of moto at %s\n", st.Info.APIURL, j.URL, motoURL)
	return &target{
		name: "local (IAM judged by the evaluator in front of moto)", info: st.Info,
		admin: admin, s3: awsconfig.Local(st.Info.Region, j.URL), pathStyle: true,
		bucket: name + "-data", probe: name + "-never",
		createBucket: true, judge: j,
	}, stop, nil
}
