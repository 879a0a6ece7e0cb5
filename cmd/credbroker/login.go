package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/credbroker/credbroker/client/cognitoauth"
)

func init() {
	register(command{
		path:    "login",
		summary: "sign in to the stack's user pool; the tokens are kept for the other commands",
		run:     runLogin,
	})
}

// passwordVariable holds the password for scripts; without it login
// prompts on the terminal.
const passwordVariable = "CREDBROKER_PASSWORD"

func runLogin(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "login")
	tf := addTargetFlags(fs)
	username := fs.String("username", "", "the user's name in the user pool")
	flowName := fs.String("flow", "", "how to prove the password: srp, password or auto (SRP, else password); default auto, password on a local stack")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *username == "" {
		return usagef("--username is required")
	}
	var flow cognitoauth.Flow
	switch *flowName {
	case "":
		// moto accepts any SRP proof, so on the local stack SRP would sign
		// anyone in whatever the password; its app client allows
		// USER_PASSWORD_AUTH, which moto does check.
		if tf.stack != "" {
			flow = cognitoauth.FlowPassword
		}
	case "auto":
	case "srp":
		flow = cognitoauth.FlowSRP
	case "password":
		flow = cognitoauth.FlowPassword
	default:
		return usagef("--flow must be srp, password or auto, not %q", *flowName)
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
			return usagef("%s", trimPrefix(err))
		}
		return sessionError{trimPrefix(err), err}
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
func readPassword(ctx context.Context, env *cmdEnv, username string) (string, error) {
	if p := env.Getenv(passwordVariable); p != "" {
		return p, nil
	}
	f, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("no password: set %s, or run credbroker login in a terminal to be asked for it", passwordVariable)
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
			return "", usagef("empty password")
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
