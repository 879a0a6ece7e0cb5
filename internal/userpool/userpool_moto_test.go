//go:build integration

package userpool_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/userpool"
)

// The directory reads a pool on moto: a username's sub, and every user
// by sub across ListUsers' pages of 60.
func TestTheDirectoryReadsThePoolPageByPage(t *testing.T) {
	ctx := t.Context()
	idp := cip.NewFromConfig(mototest.Config(t))
	pool, err := idp.CreateUserPool(ctx, &cip.CreateUserPoolInput{PoolName: aws.String(mototest.Name(t, "userpool"))})
	if err != nil {
		t.Fatal(err)
	}
	poolID := aws.ToString(pool.UserPool.Id)
	want := map[string]userpool.Person{}
	for i := range 65 { // two pages
		name := fmt.Sprintf("user-%02d", i)
		in := &cip.AdminCreateUserInput{UserPoolId: aws.String(poolID), Username: aws.String(name), MessageAction: types.MessageActionTypeSuppress}
		p := userpool.Person{Username: name}
		if i%2 == 0 { // some with an email, some without
			p.Email = name + "@example.com"
			in.UserAttributes = []types.AttributeType{{Name: aws.String("email"), Value: aws.String(p.Email)}}
		}
		if _, err := idp.AdminCreateUser(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(poolID), Username: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got.UserAttributes {
			if aws.ToString(a.Name) == "sub" {
				want[aws.ToString(a.Value)] = p
			}
		}
	}
	d := &userpool.Directory{Client: idp, PoolID: poolID}
	people, err := d.People(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, people); diff != "" {
		t.Errorf("people (-want +got):\n%s", diff)
	}
	for sub, p := range want {
		got, err := d.SubOf(ctx, p.Username)
		if err != nil || got != sub {
			t.Errorf("SubOf(%s) = %q, %v; want %q", p.Username, got, err, sub)
		}
		break
	}
	if _, err := d.SubOf(ctx, "nobody"); broker.KindOf(err) != broker.Invalid {
		t.Errorf("SubOf(nobody): %v, want an Invalid error", err)
	}
}
