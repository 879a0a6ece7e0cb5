package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/credbroker/credbroker/internal/cli"
)

func init() {
	register(cli.Command{
		Path:    "credential-process",
		Summary: "print credentials for an AWS CLI or SDK profile's credential_process (--bucket B or --project P)",
		Run:     runCredentialProcess,
	})
}

// processCredentials is what credential_process must print: the AWS
// SDKs' Version 1 format.
type processCredentials struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken"`
	Expiration      string `json:"Expiration"`
}

// runCredentialProcess answers from the cached credentials while they are
// valid long enough (session.go says how long), which is what most of its
// runs do: botocore runs it before nearly every call.
func runCredentialProcess(ctx context.Context, env *cli.Env, args []string) error {
	s, _, creds, err := handOut(ctx, env, "credential-process", args)
	if err != nil {
		return err
	}
	out, err := json.Marshal(processCredentials{
		Version: 1, AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken,
		Expiration: creds.Expires.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	// One write, and only once everything went well.
	if _, err := env.Stdout.Write(append(out, '\n')); err != nil {
		return err
	}
	s.flushWarnings(env)
	return nil
}
