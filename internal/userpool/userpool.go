// Package userpool reads the Cognito user pool's directory for the
// operators' commands: the sub (the user id of every record) of a username,
// and the username and email of every sub, so that a listing of subs can
// name the people.
package userpool

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// API is what the directory calls of Cognito (*cip.Client).
type API interface {
	AdminGetUser(ctx context.Context, in *cip.AdminGetUserInput, optFns ...func(*cip.Options)) (*cip.AdminGetUserOutput, error)
	ListUsers(ctx context.Context, in *cip.ListUsersInput, optFns ...func(*cip.Options)) (*cip.ListUsersOutput, error)
}

// Directory is one user pool's users.
type Directory struct {
	Client API
	PoolID string
}

// Person is what a listing shows of a user besides the sub.
type Person struct {
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
}

// SubOf returns the sub of the user called username: an Invalid error
// when the pool has no such user.
func (d *Directory) SubOf(ctx context.Context, username string) (string, error) {
	const op = "look up username"
	out, err := d.Client.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(d.PoolID), Username: aws.String(username)})
	if err != nil {
		var nf *types.UserNotFoundException
		if errors.As(err, &nf) {
			return "", broker.Errorf(broker.Invalid, op, "no user %q in user pool %s", username, d.PoolID)
		}
		return "", broker.Wrap(broker.Transient, op, err)
	}
	if sub := attribute(out.UserAttributes, "sub"); sub != "" {
		return sub, nil
	}
	return "", broker.Errorf(broker.Internal, op, "user %q has no sub attribute", username)
}

// listPage is ListUsers' largest page.
const listPage = 60

// People returns every user of the pool by sub, page by page (ListUsers
// reads 60 users a call).
func (d *Directory) People(ctx context.Context) (map[string]Person, error) {
	out := map[string]Person{}
	in := &cip.ListUsersInput{UserPoolId: aws.String(d.PoolID), Limit: aws.Int32(listPage), AttributesToGet: []string{"sub", "email"}}
	for {
		page, err := d.Client.ListUsers(ctx, in)
		if err != nil {
			return nil, broker.Wrap(broker.Transient, "list users", err)
		}
		for _, u := range page.Users {
			if sub := attribute(u.Attributes, "sub"); sub != "" {
				out[sub] = Person{Username: aws.ToString(u.Username), Email: attribute(u.Attributes, "email")}
			}
		}
		if aws.ToString(page.PaginationToken) == "" {
			return out, nil
		}
		in.PaginationToken = page.PaginationToken
	}
}

func attribute(attrs []types.AttributeType, name string) string {
	for _, a := range attrs {
		if aws.ToString(a.Name) == name {
			return aws.ToString(a.Value)
		}
	}
	return ""
}
