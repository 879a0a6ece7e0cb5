package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/localstack"
)

// world is what a run creates in the stack, and what the generator knows
// about it: every user is a member of one shared project (even users with
// write access, odd ones with read) and of a project of their own with one
// bucket; the writer adds and removes the shared project's places. Names
// carry the run id, so runs against one stack never meet.
type world struct {
	id     string
	users  []*user
	shared string // the shared project's id

	ddb   *dynamodb.Client
	table string // the membership table

	mu     sync.Mutex
	places []*sharedPlace
	// ever holds every shared place that was ever written: the most any
	// user may have been granted.
	ever map[string]bool
}

type user struct {
	name, sub, token string
	shared           broker.Access // the user's access to the shared project
	own              broker.Place  // the bucket of the user's own project
}

// sharedPlace is one place of the writer's pool: a whole bucket, or a
// folder written without its trailing slash (the answer normalizes it).
type sharedPlace struct {
	bucket, folder string
	present        bool
}

func (p *sharedPlace) prefix() string {
	if p.folder == "" {
		return ""
	}
	return p.folder + "/"
}

func (p *sharedPlace) key() string { return p.bucket + "/" + p.prefix() }

func newRunID() string {
	var b [3]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setUp creates the users (Cognito) and the memberships and buckets
// (membership table) of a run, and signs every user in.
func setUp(ctx context.Context, cfg aws.Config, info localstack.Info, id string, users, places int) (*world, error) {
	w := &world{id: id, shared: "load-" + id + "-shared", ddb: dynamodb.NewFromConfig(cfg), table: info.MembershipTable, ever: map[string]bool{}}
	for k := range places {
		p := &sharedPlace{bucket: fmt.Sprintf("load-%s-s%02d", id, k), present: k < (places+1)/2}
		if k%2 == 1 {
			p.folder = fmt.Sprintf("team-%02d", k)
		}
		w.places = append(w.places, p)
	}
	for i := range users {
		u := &user{name: fmt.Sprintf("load-%s-u%03d", id, i), shared: broker.Write,
			own: broker.Place{Bucket: fmt.Sprintf("load-%s-o%03d", id, i), Access: broker.Write}}
		if i%2 == 1 {
			u.shared = broker.Read
		}
		w.users = append(w.users, u)
	}

	idp := cip.NewFromConfig(cfg)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, u := range w.users {
		g.Go(func() error { return signUp(gctx, idp, info, u, "Load-Passw0rd!"+id) })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}

	var rows []map[string]types.AttributeValue
	for _, p := range w.places {
		if p.present {
			w.ever[p.key()] = true
			rows = append(rows, bucketRow(w.shared, p))
		}
	}
	for i, u := range w.users {
		own := ownProject(id, i)
		rows = append(rows,
			item("USER#"+u.sub, "PROJECT#"+w.shared, "role", string(u.shared)),
			item("USER#"+u.sub, "PROJECT#"+own, "role", "write"),
			item("PROJECT#"+own, "BUCKET#"+u.own.Bucket))
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, r := range rows {
		g.Go(func() error {
			_, err := w.ddb.PutItem(gctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: r})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("write memberships: %w", err)
	}
	return w, nil
}

func ownProject(id string, i int) string { return fmt.Sprintf("load-%s-own-%03d", id, i) }

func signUp(ctx context.Context, idp *cip.Client, info localstack.Info, u *user, password string) error {
	pool := aws.String(info.UserPoolID)
	if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: pool, Username: aws.String(u.name), MessageAction: ciptypes.MessageActionTypeSuppress}); err != nil {
		return err
	}
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: pool, Username: aws.String(u.name), Password: aws.String(password), Permanent: true}); err != nil {
		return err
	}
	got, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: pool, Username: aws.String(u.name)})
	if err != nil {
		return err
	}
	for _, a := range got.UserAttributes {
		if aws.ToString(a.Name) == "sub" {
			u.sub = aws.ToString(a.Value)
		}
	}
	if u.sub == "" {
		return fmt.Errorf("user %s has no sub", u.name)
	}
	out, err := idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		ClientId: aws.String(info.UserPoolClientID), AuthFlow: ciptypes.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": u.name, "PASSWORD": password},
	})
	if err != nil {
		return err
	}
	if out.AuthenticationResult == nil || aws.ToString(out.AuthenticationResult.AccessToken) == "" {
		return fmt.Errorf("user %s: sign-in returned no access token", u.name)
	}
	u.token = aws.ToString(out.AuthenticationResult.AccessToken)
	return nil
}

func item(pk, sk string, attrs ...string) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}
	for i := 0; i+1 < len(attrs); i += 2 {
		m[attrs[i]] = &types.AttributeValueMemberS{Value: attrs[i+1]}
	}
	return m
}

func bucketRow(project string, p *sharedPlace) map[string]types.AttributeValue {
	if p.folder == "" {
		return item("PROJECT#"+project, "BUCKET#"+p.bucket)
	}
	return item("PROJECT#"+project, "BUCKET#"+p.bucket, "prefix", p.folder)
}

// expected is what user u should be granted now, sorted.
func (w *world) expected(u *user) []broker.Place {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []broker.Place{u.own}
	for _, p := range w.places {
		if p.present {
			out = append(out, broker.Place{Bucket: p.bucket, Prefix: p.prefix(), Access: u.shared})
		}
	}
	sortPlaces(out)
	return out
}

// everGranted reports whether u was ever granted g (or more): its own
// bucket, or a shared place that was written at some point, at no more
// than u's access to the shared project. Anything else in an answer is an
// over-grant, whatever the timing.
func (w *world) everGranted(u *user, g broker.Place) bool {
	if g.Bucket == u.own.Bucket && g.Prefix == u.own.Prefix {
		return u.own.Access.Covers(g.Access)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ever[g.Bucket+"/"+g.Prefix] && u.shared.Covers(g.Access)
}

// universe is every place a run knows about, plus one bucket nobody was
// ever granted: the probes of the credential check.
func (w *world) universe() []broker.Place {
	out := []broker.Place{{Bucket: "load-" + w.id + "-never", Access: broker.Write}}
	for _, p := range w.places {
		out = append(out, broker.Place{Bucket: p.bucket, Prefix: p.prefix(), Access: broker.Write})
	}
	for _, u := range w.users {
		out = append(out, u.own)
	}
	return out
}

// change adds or removes one random place of the shared project and
// returns when the write was sent. A place is marked as ever granted
// before it is written, so that an answer can never show it first.
func (w *world) change(ctx context.Context, rng *rand.Rand) (time.Time, error) {
	w.mu.Lock()
	p := w.places[rng.IntN(len(w.places))]
	add := !p.present
	if add {
		w.ever[p.key()] = true
	}
	w.mu.Unlock()

	sent := time.Now()
	var err error
	if add {
		_, err = w.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: bucketRow(w.shared, p)})
	} else {
		_, err = w.ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(w.table), Key: item("PROJECT#"+w.shared, "BUCKET#"+p.bucket)})
	}
	if err != nil {
		// The write may or may not have landed; neither the final state
		// nor the convergence time would mean anything.
		return sent, fmt.Errorf("writer: %w", err)
	}
	w.mu.Lock()
	p.present = add
	w.mu.Unlock()
	return sent, nil
}

func sortPlaces(ps []broker.Place) {
	slices.SortFunc(ps, func(a, b broker.Place) int {
		return strings.Compare(a.Bucket+"\x00"+a.Prefix+"\x00"+string(a.Access), b.Bucket+"\x00"+b.Prefix+"\x00"+string(b.Access))
	})
}
