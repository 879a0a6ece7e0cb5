package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/revoke"
	"github.com/credbroker/credbroker/internal/wire"
)

func init() {
	register(command{
		path:    "admin revoke",
		summary: "revoke every current session of one user now (README \"Revocation\")",
		run:     adminRevoke,
	})
}

// adminRevoke runs the revoker's code with the operator's own credentials:
// it moves the user's cutoff, adds the user to the base role's deny list and
// sends the CredentialsRevoked event, as the revoker function would.
func adminRevoke(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "admin revoke")
	t := addTargetFlags(fs)
	user := fs.String("user", "", "the user's id (Cognito sub)")
	session := fs.Duration("session-duration", time.Hour, "the stack's SessionDurationSeconds: how long the deny entry must stay")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return usagef("--user is required")
	}
	if err := broker.ValidateUserID(*user); err != nil {
		return usagef("--user: %s", broker.MessageOf(err))
	}
	tgt, err := t.resolve(env, "policyTable", "eventBusName", "baseRoleArn")
	if err != nil {
		return err
	}
	cfg, err := tgt.aws(ctx)
	if err != nil {
		return err
	}
	now, offset, err := awsClock(ctx, cfg, env.now)
	if err != nil {
		return err
	}
	if offset > 2*time.Second || offset < -2*time.Second {
		fmt.Fprintf(env.Stderr, "credbroker admin revoke: this machine's clock is %v off AWS's; using AWS's\n", offset.Round(time.Second))
	}
	h, err := wire.Revoker(revoke.Config{PolicyTable: tgt.PolicyTable, AuditBusName: tgt.EventBusName, BaseRoleARN: tgt.BaseRoleARN, MaxSession: *session},
		cfg, logging.New(env.Stderr, slog.LevelWarn, "revoker"), io.Discard)
	if err != nil {
		return usagef("%s", message(err))
	}
	h.Now, h.Service.Now = now, now
	payload, _ := json.Marshal(revoke.Action{Action: "revoke", UserID: *user, RequestID: fmt.Sprintf("operator-%d", now().UnixMilli())})
	req, err := h.Decode(payload)
	if err != nil {
		return usagef("%s", message(err))
	}
	if _, err := h.Service.Revoke(ctx, *req); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "revoked: sessions of %s issued before %s are denied\n", *user, req.Entries[0].Before.Format(time.RFC3339))
	return nil
}
