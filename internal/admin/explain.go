package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/projector"
)

func init() {
	register(cli.Command{Path: "admin explain", Summary: "what a user can reach, through which projects, and why", Run: runExplain})
}

// explanation is admin explain's answer. The first three fields are the
// contract's; the others say why and how current it is.
type explanation struct {
	UserID        string         `json:"userId"`
	PolicyVersion string         `json:"policyVersion"`
	Grants        []broker.Grant `json:"grants"`
	// UpdatedAt is when the user's grants last changed ("" when the user
	// has no policy item).
	UpdatedAt string `json:"updatedAt,omitempty"`
	// CredentialSets is how many credential sets an answer holds.
	CredentialSets int `json:"credentialSets"`
	// Memberships are the user's records in the membership table, those
	// that grant nothing included.
	Memberships []membershipView `json:"memberships"`
	// InSync says whether the policy table holds what the membership
	// table grants right now; false while a change is on its way (about
	// a second), or on drift.
	InSync bool `json:"inSync"`
}

type membershipView struct {
	Project string `json:"project"`
	// Access is the role the record gives ("" when it is rejected).
	Access broker.Access `json:"access,omitempty"`
	// ExpiresAt is when the membership stops granting, when it is bounded.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Places is how many places of the project the policy item holds.
	Places int `json:"places"`
	// Rejected is why the record grants nothing, when it breaks the rules.
	Rejected string `json:"rejected,omitempty"`
}

func runExplain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin explain")
	tf := cli.AddTargetFlags(fs, cli.MembershipTable, cli.PolicyTable, cli.UserPool, cli.BaseRole)
	user := addUserFlags(fs)
	asJSON := fs.Bool("json", false, `print {"userId","policyVersion","grants":[{"bucket","prefix","access","projects","expiresAt"?}],...}`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	a, err := openAdmin(ctx, env, tf, user.need(cli.MembershipTable, cli.PolicyTable)...)
	if err != nil {
		return err
	}
	userID, err := user.resolve(ctx, a)
	if err != nil {
		return err
	}
	x, err := a.explain(ctx, userID)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.PrintJSON(env.Stdout, x)
	}
	return printExplanation(env, x)
}

// explain reads the user's policy item, which is what the endpoint serves,
// and the user's records, and compares the item with what the records
// grant now.
func (a *admin) explain(ctx context.Context, userID string) (explanation, error) {
	stored, err := a.store.GetPolicy(ctx, userID)
	switch {
	case broker.KindOf(err) == broker.NotFound:
		stored = broker.UserPolicy{UserID: userID}
	case err != nil:
		return explanation{}, fmt.Errorf("the policy item of %s cannot be read (the endpoint serves nothing from it; a rebuild replaces it): %w", userID, err)
	}
	// A grant past its expiry reaches nothing (the session policy bounds
	// it) even while its item waits for the recompute that drops it.
	x := explanation{UserID: userID, PolicyVersion: stored.Version, Grants: broker.LiveGrants(stored.Grants, a.now()),
		CredentialSets: len(stored.Sets), Memberships: []membershipView{}}
	if x.Grants == nil {
		x.Grants = []broker.Grant{}
	}
	for i := range x.Grants {
		if x.Grants[i].Projects == nil {
			x.Grants[i].Projects = []string{}
		}
	}
	if !stored.UpdatedAt.IsZero() {
		x.UpdatedAt = stored.UpdatedAt.UTC().Format(time.RFC3339)
	}
	items, err := a.store.UserMemberships(ctx, userID)
	if err != nil {
		return explanation{}, err
	}
	for _, it := range items {
		parsed, err := projector.Validate(a.compiler, it)
		ref, _ := broker.ParseRef(it.PK, it.SK)
		v := membershipView{Project: ref.ProjectID}
		if v.Project == "" {
			v.Project = it.SK[len(broker.ProjectKeyPrefix):]
		}
		if err != nil {
			v.Rejected = broker.MessageOf(err)
		} else {
			v.Access, v.Places, v.ExpiresAt = parsed.Membership.Access, len(stored.ByProject[v.Project]), parsed.Membership.ExpiresAt
		}
		x.Memberships = append(x.Memberships, v)
	}
	want, err := a.compute(ctx, userID, a.now())
	if err != nil {
		return explanation{}, err
	}
	x.InSync = (want.Empty() && stored.Empty()) || want.SameContent(stored)
	return x, nil
}

func printExplanation(env *cli.Env, x explanation) error {
	w := env.Stdout
	fmt.Fprintf(w, "user %s\n", x.UserID)
	if x.PolicyVersion == "" {
		fmt.Fprintln(w, "no policy item")
	} else {
		fmt.Fprintf(w, "policy version %s, changed %s, %d credential set(s)\n", x.PolicyVersion, x.UpdatedAt, x.CredentialSets)
	}
	fmt.Fprintln(w)
	if len(x.Grants) == 0 {
		fmt.Fprintln(w, "grants: none (the endpoint answers 403 no_access)")
	} else {
		out := cli.NewRows(w, cli.FormatTable, "BUCKET", "FOLDER", "ACCESS", "THROUGH PROJECTS", "UNTIL")
		for _, g := range x.Grants {
			_ = out.Add(g, g.Bucket, cli.Folder(g.Prefix), string(g.Access), strings.Join(g.Projects, " "), cli.Until(g.ExpiresAt))
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(x.Memberships) == 0 {
		fmt.Fprintln(w, "memberships: none in the membership table")
	} else {
		slices.SortFunc(x.Memberships, func(a, b membershipView) int { return cmp.Compare(a.Project, b.Project) })
		out := cli.NewRows(w, cli.FormatTable, "PROJECT", "ROLE", "UNTIL", "GRANTS")
		for _, m := range x.Memberships {
			status := fmt.Sprintf("%d place(s)", m.Places)
			switch {
			case m.Rejected != "":
				status = "nothing: the record breaks the rules: " + m.Rejected
			case !m.ExpiresAt.IsZero() && !m.ExpiresAt.After(env.Now()):
				status = "nothing: the membership expired"
			case m.Places == 0:
				status = "nothing: the project has no bucket (or the change is on its way)"
			}
			role := string(m.Access)
			if role == "" {
				role = "-"
			}
			_ = out.Add(m, m.Project, role, cli.Until(m.ExpiresAt), status)
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	if !x.InSync {
		fmt.Fprintln(w, "\nnote: the membership table grants something else right now: a change on its way (the projector applies it within about a second), or drift (run verify)")
	}
	return nil
}
