package cognitoauth

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

// The sign-in flows (password and SRP) and what their answers become:
// tokens, or an error that says what Cognito refused.

func (s *Source) signInPassword(ctx context.Context, username, password string) (*Tokens, error) {
	params := map[string]string{"USERNAME": username, "PASSWORD": password}
	s.addSecretHash(params, username)
	start := s.cfg.Now()
	out, err := s.cfg.Client.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeUserPasswordAuth, ClientId: aws.String(s.cfg.ClientID), AuthParameters: params,
	})
	if err != nil {
		return nil, signInError(FlowPassword, username, err)
	}
	return s.result(start, username, out.ChallengeName, out.AuthenticationResult)
}

func (s *Source) signInSRP(ctx context.Context, username, password string) (*Tokens, error) {
	sess, err := newSRPSession(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("cognitoauth: %w", err)
	}
	params := map[string]string{"USERNAME": username, "SRP_A": sess.srpA()}
	s.addSecretHash(params, username)
	out, err := s.cfg.Client.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeUserSrpAuth, ClientId: aws.String(s.cfg.ClientID), AuthParameters: params,
	})
	if err != nil {
		return nil, signInError(FlowSRP, username, err)
	}
	if out.ChallengeName != types.ChallengeNameTypePasswordVerifier {
		return s.result(s.cfg.Now(), username, out.ChallengeName, out.AuthenticationResult)
	}
	cp := out.ChallengeParameters
	userID := cmp.Or(cp["USER_ID_FOR_SRP"], username)
	now := s.cfg.Now()
	ts := srpTimestamp(now)
	key, err := sess.passwordKey(s.poolName, userID, password, cp["SALT"], cp["SRP_B"])
	if err != nil {
		return nil, fmt.Errorf("cognitoauth: sign in as %q: %w", username, err)
	}
	sig, err := claimSignature(key, s.poolName, userID, cp["SECRET_BLOCK"], ts)
	if err != nil {
		return nil, fmt.Errorf("cognitoauth: sign in as %q: %w", username, err)
	}
	// The proof is over USER_ID_FOR_SRP (the pool's internal name of the
	// user); USERNAME answers with the name the challenge gives, which is
	// the same in Cognito (and differs in moto, which only knows usernames).
	respondAs := cmp.Or(cp["USERNAME"], userID)
	answers := map[string]string{
		"USERNAME":                    respondAs,
		"PASSWORD_CLAIM_SECRET_BLOCK": cp["SECRET_BLOCK"],
		"PASSWORD_CLAIM_SIGNATURE":    sig,
		"TIMESTAMP":                   ts,
	}
	s.addSecretHash(answers, respondAs)
	resp, err := s.cfg.Client.RespondToAuthChallenge(ctx, &cip.RespondToAuthChallengeInput{
		ChallengeName: types.ChallengeNameTypePasswordVerifier, ClientId: aws.String(s.cfg.ClientID),
		ChallengeResponses: answers, Session: out.Session,
	})
	if err != nil {
		return nil, signInError(FlowSRP, username, err)
	}
	return s.result(now, userID, resp.ChallengeName, resp.AuthenticationResult)
}

// result turns Cognito's answer into tokens, or a challenge into an error.
func (s *Source) result(start time.Time, username string, challenge types.ChallengeNameType, r *types.AuthenticationResultType) (*Tokens, error) {
	if challenge != "" {
		return nil, &ChallengeError{Name: string(challenge)}
	}
	if r == nil || aws.ToString(r.AccessToken) == "" || r.ExpiresIn <= 0 {
		return nil, errors.New("cognitoauth: Cognito answered without an access token and its lifetime")
	}
	access := aws.ToString(r.AccessToken)
	return &Tokens{
		Username:     cmp.Or(tokenUsername(access), username),
		ClientID:     s.cfg.ClientID,
		AccessToken:  access,
		IDToken:      aws.ToString(r.IdToken),
		RefreshToken: aws.ToString(r.RefreshToken),
		// From the time the request was sent: never later than Cognito's.
		Expiry: start.Add(time.Duration(r.ExpiresIn) * time.Second),
	}, nil
}

// tokenUsername reads the username claim of a Cognito access token: the
// pool's own name for the user, which SECRET_HASH needs on refresh when
// the user signed in with an alias such as an email address. The token
// comes from Cognito itself; nothing is decided on its claims.
func tokenUsername(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Username string `json:"username"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Username
}

func (s *Source) addSecretHash(params map[string]string, username string) {
	if s.cfg.ClientSecret == "" {
		return
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.ClientSecret))
	mac.Write([]byte(username + s.cfg.ClientID))
	params["SECRET_HASH"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signInError maps Cognito's refusals to this package's errors. Cognito's
// messages never echo the password, so they are kept for the details.
func signInError(flow Flow, username string, err error) error {
	var (
		na *types.NotAuthorizedException
		nf *types.UserNotFoundException
		ip *types.InvalidParameterException
		pr *types.PasswordResetRequiredException
		nc *types.UserNotConfirmedException
	)
	switch {
	case errors.As(err, &na), errors.As(err, &nf):
		return fmt.Errorf("%w (user %q)", ErrNotAuthorized, username)
	case errors.As(err, &ip) && flowNotEnabled(aws.ToString(ip.Message)):
		return fmt.Errorf("%w: %s (%s)", ErrFlowNotEnabled, flow, aws.ToString(ip.Message))
	case errors.As(err, &pr):
		return fmt.Errorf("cognitoauth: user %q must reset the password first (PasswordResetRequiredException)", username)
	case errors.As(err, &nc):
		return fmt.Errorf("cognitoauth: user %q is not confirmed yet (UserNotConfirmedException)", username)
	}
	return fmt.Errorf("cognitoauth: sign in as %q with %s: %w", username, flow, err)
}

// flowNotEnabled recognizes Cognito's InvalidParameterException for an
// auth flow the app client does not allow ("USER_PASSWORD_AUTH flow not
// enabled for this client").
func flowNotEnabled(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "not enabled") || strings.Contains(m, "not allowed") || strings.Contains(m, "not supported")
}
