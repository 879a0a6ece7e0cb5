package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
)

func init() {
	register(cli.Command{
		Path:    "grants",
		Summary: "list the buckets and folders you can reach, with your access and through which projects",
		Run:     runGrants,
	})
}

// runGrants asks the endpoint (which answers from its cache unless the
// grants changed) and lists the grants of the answer's sets: what
// credential-process and env can hand out.
func runGrants(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "grants")
	tf := cli.AddTargetFlags(fs, userParts...)
	project := fs.String("project", "", "a project: only the grants it gives")
	asJSON := fs.Bool("json", false, `print [{"bucket","prefix","access","projects","expiresAt"?}]`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *project != "" && !projectPattern.MatchString(*project) {
		return cli.Usagef("--project %q is not a project id (1-128 of A-Z a-z 0-9 . _ : @ = + -)", *project)
	}
	s, err := openSession(env, tf, "", cli.APIURL)
	if err != nil {
		return err
	}
	c, err := s.client(ctx, env)
	if err != nil {
		return err
	}
	a, err := c.Reload(ctx, *project)
	if errors.Is(err, client.ErrNoAccess) {
		what := "this stack"
		if *project != "" {
			what = "project " + *project
		}
		return broker.Errorf(broker.NoAccess, "grants", "you are granted nothing on %s: an operator adds you to a project (`credbroker admin member put`)", what)
	}
	if err != nil {
		return s.userError(err)
	}
	format := map[bool]string{true: cli.FormatJSON, false: cli.FormatTable}[*asJSON]
	out := cli.NewRows(env.Stdout, format, "BUCKET", "FOLDER", "ACCESS", "THROUGH PROJECTS", "UNTIL")
	for _, set := range a.CredentialSets {
		for _, g := range set.Grants {
			// A row of --json is the answer's grant as it came.
			if g.Projects == nil {
				g.Projects = []string{}
			}
			if err := out.Add(g, g.Bucket, cli.Folder(g.Prefix), string(g.Access), strings.Join(g.Projects, " "), cli.Until(g.ExpiresAt)); err != nil {
				return err
			}
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	if !*asJSON {
		fmt.Fprintf(env.Stderr, "credentials for these: `credbroker credential-process%s --bucket B` or `credbroker env%s --bucket B` (valid until %s)\n",
			s.where, s.where, a.Expiration.UTC().Format(time.RFC3339))
	}
	s.flushWarnings(env)
	return nil
}
