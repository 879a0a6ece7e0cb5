package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/cli"
)

func init() {
	register(cli.Command{
		Path:    "env",
		Summary: "print export lines of credentials for a shell: eval \"$(credbroker env --bucket B)\"",
		Run:     runEnv,
	})
}

func runEnv(ctx context.Context, env *cli.Env, args []string) error {
	s, t, creds, err := handOut(ctx, env, "env", args)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, v := range [][2]string{
		{"AWS_ACCESS_KEY_ID", creds.AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey},
		{"AWS_SESSION_TOKEN", creds.SessionToken},
	} {
		fmt.Fprintf(&b, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	scope := "project " + t.Project + "'s grants"
	if t.Bucket != "" {
		scope = t.String()
	}
	fmt.Fprintf(&b, "# credbroker: credentials for %s, valid until %s\n", cli.OneLine(scope), creds.Expires.UTC().Format(time.RFC3339))
	if _, err := fmt.Fprint(env.Stdout, b.String()); err != nil {
		return err
	}
	s.flushWarnings(env)
	return nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special but the single quote, which is closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
