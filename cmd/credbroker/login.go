package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"golang.org/x/term"

	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/envconf"
)

func init() {
	register(cli.Command{
		Path:    "login",
		Summary: "sign in to the stack's user pool; the tokens are kept for the other commands",
		Run:     runLogin,
	})
}

// passwordVariable holds the password for scripts; without it login
// prompts on the terminal. (Cognito refuses a password that starts or
// ends with a space, so envconf's trimming loses nothing.)
const passwordVariable = "CREDBROKER_PASSWORD"

func runLogin(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "login")
	tf := cli.AddTargetFlags(fs, cli.UserPool, cli.Client)
	username := fs.String("username", "", "the user's name in the user pool")
	flowName := fs.String("flow", "", "how to prove the password: srp, password or auto (SRP, else password); default auto, password on a local stack")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *username == "" {
		return cli.Usagef("--username is required")
	}
	var flow cognitoauth.Flow
	switch *flowName {
	case "":
		// moto accepts any SRP proof, so on the local stack SRP would sign
		// anyone in whatever the password; its app client allows
		// USER_PASSWORD_AUTH, which moto does check.
		if tf.Stack != "" {
			flow = cognitoauth.FlowPassword
		}
	case "auto":
	case "srp":
		flow = cognitoauth.FlowSRP
	case "password":
		flow = cognitoauth.FlowPassword
	default:
		return cli.Usagef("--flow must be srp, password or auto, not %q", *flowName)
	}
	s, err := openSession(env, tf, flow)
	if err != nil {
		return err
	}
	password, err := readPassword(ctx, env, *username)
	if err != nil {
		return err
	}
	// The previous sign-in, whose cached credentials go with it.
	previous, _ := cognitoauth.FileStore{Path: s.tokenFile()}.Load(ctx)
	if err := s.tokens.SignIn(ctx, *username, password); err != nil {
		switch {
		case errors.Is(err, cognitoauth.ErrNotAuthorized), errors.Is(err, cognitoauth.ErrNewPasswordRequired),
			errors.Is(err, cognitoauth.ErrFlowNotEnabled):
			return cli.Usagef("%s", trimPrefix(err))
		}
		var ue *url.Error
		if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
			return broker.Errorf(broker.Transient, "login", "cannot reach the user pool's sign-in (Cognito at %s): %s; %s", ue.URL, cli.URLCause(ue), s.poolHint())
		}
		return broker.Errorf(broker.Transient, "login", "%s", trimPrefix(err))
	}
	tok, err := s.tokens.Tokens(ctx)
	if err != nil {
		return err
	}
	// A new sign-in starts with no cached credentials: after a
	// revocation, signing in again is how a user drops the refused ones.
	for _, u := range []*cognitoauth.Tokens{previous, &tok} {
		if u != nil {
			if err := s.forget(u.Username); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(env.Stdout, "Signed in as %s. Tokens kept in %s (readable by you only); refreshed as they expire.\n", *username, s.tokenFile())
	return nil
}

// readPassword returns the password from the environment, or asks for it
// on the terminal without echo.
func readPassword(ctx context.Context, env *cli.Env, username string) (string, error) {
	if p := envconf.New(env.Getenv).String(passwordVariable, ""); p != "" {
		return p, nil
	}
	f, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", cli.Usagef("no password: set %s, or run credbroker login in a terminal to be asked for it", passwordVariable)
	}
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(env.Stderr, "Password for %s: ", username)
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- read{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(env.Stderr)
		if r.err != nil {
			return "", fmt.Errorf("read the password: %w", r.err)
		}
		if len(r.b) == 0 {
			return "", cli.Usagef("empty password")
		}
		return string(r.b), nil
	case <-ctx.Done():
		// Interrupted at the prompt: give the terminal its echo back
		// (the read is abandoned with the process).
		_ = term.Restore(fd, state)
		fmt.Fprintln(env.Stderr)
		return "", fmt.Errorf("interrupted at the password prompt: %w", ctx.Err())
	}
}
