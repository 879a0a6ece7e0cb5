//go:build integration

package localstack_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/browsertest"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// ScreenshotVar names the file the demo page's screenshot is written to
// (default: credbroker-demo.png in the temporary directory).
const screenshotVar = "DEMO_SCREENSHOT"

// builtDemo returns web/dist/demo, which `make test` builds before this
// tier runs.
func builtDemo(t *testing.T) string {
	t.Helper()
	tpl, err := samtemplate.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(tpl), "web", "dist", "demo")
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Fatalf("the demo page is not built (%v): run `make web` (Node.js 20+ and npm), which `make test` does first", err)
	}
	return dir
}

// shownGrant is a row of the page's grants table: its data attributes, the
// text of its first four cells, what it says of the grant's end (Ends: the
// words, EndsAt: the instant they stand for) and its credential set's name
// (none while one set holds every grant).
type shownGrant struct {
	Bucket, Prefix, Access, Set string
	Cells                       []string
	Ends, EndsAt, SetName       string
}

const grantRows = `[...document.querySelectorAll('tr[data-testid="grant"]')].map((r) => ({
	Bucket: r.dataset.bucket, Prefix: r.dataset.prefix, Access: r.dataset.access, Set: r.dataset.set,
	Cells: [...r.cells].slice(0, 4).map((c) => c.textContent.trim()),
	Ends: (r.querySelector('[data-testid="grant-expires-in"]') ?? r.querySelector('[data-testid="grant-expiry"]')).textContent.trim(),
	EndsAt: r.querySelector('[data-testid="grant-expiry"] time')?.getAttribute('datetime') ?? '',
	SetName: r.querySelector('[data-testid="grant-set"]')?.textContent ?? '',
}))`

// The demo page, served by the local stack, in a real headless Chromium:
// sign in as the seeded user, see the grants the endpoint gives, list a
// writable folder, upload to it (the object lands in moto's S3), and be
// refused, with the reason, an upload to a read-only bucket (nothing is
// sent or written). The browser checks CORS for real: the endpoint's for
// the page's origin, and each demo bucket's.
func TestTheDemoPageInChromium(t *testing.T) {
	page := browsertest.Open(t, 3*time.Minute)
	st, err := localstack.Start(context.Background(), localstack.Options{
		Moto: mototest.Endpoint(t), Port: freePort(t), WebPort: freePort(t), WebDir: builtDemo(t),
		Dir: t.TempDir(), Name: mototest.Name(t, "local"), Seed: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	demo := st.Demo

	// What the endpoint answers the demo user, once every seeded grant is
	// projected: the page must show exactly that.
	// And a contractor's grant, for two and a half hours: "expires in 2 h".
	c := newClient(st)
	c.put(t, map[string]types.AttributeValue{"pk": s("PROJECT#contract"), "sk": s("BUCKET#contract-bucket")})
	c.put(t, map[string]types.AttributeValue{"pk": s("USER#" + demo.UserID), "sk": s("PROJECT#contract"),
		"expiresAt": s(time.Now().Add(150 * time.Minute).UTC().Format(time.RFC3339))})
	token := signIn(t, st, demo.Username, demo.Password)
	seeded := len(demo.Places) + len(demo.ReadOnlyPlaces) + 1
	a := until(t, st, token, func(a answer) bool { return a.status == http.StatusOK && len(a.places()) == seeded })
	if len(a.body.CredentialSets) != 1 {
		t.Fatalf("setup: the answer has %d credential sets, want the one this test expects", len(a.body.CredentialSets))
	}
	var want []shownGrant
	for i, set := range a.body.CredentialSets {
		for _, g := range set.Grants {
			folder, access := g.Prefix, map[string]string{"read": "read only", "write": "read and write"}[g.Access]
			if folder == "" {
				folder = "whole bucket"
			}
			ends, endsAt := "no end", ""
			if g.ExpiresAt != "" {
				at, err := time.Parse(time.RFC3339, g.ExpiresAt)
				if err != nil {
					t.Fatal(err)
				}
				ends, endsAt = "expires in 2 h", at.UTC().Format("2006-01-02T15:04:05.000Z")
			}
			want = append(want, shownGrant{Bucket: g.Bucket, Prefix: g.Prefix, Access: g.Access, Set: fmt.Sprint(i),
				Cells: []string{g.Bucket, folder, access, strings.Join(g.Projects, ", ")}, Ends: ends, EndsAt: endsAt})
		}
	}

	page.Do("open the page",
		chromedp.Navigate(st.Info.WebURL),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="signed-out"]`)))
	if flow := browsertest.Get(page, "read the sign-in method", chromedp.Value(chromedp.CSS("#signin-flow"))); flow != "USER_PASSWORD_AUTH" {
		t.Errorf("sign-in method %q preselected, want USER_PASSWORD_AUTH from config.json", flow)
	}
	if shown := browsertest.Get(page, "read the session bar", chromedp.Evaluate[string](
		`getComputedStyle(document.getElementById('session')).display`)); shown != "none" {
		t.Errorf("signed out, the page shows the session bar (display %q)", shown)
	}
	// moto is plain HTTP: the page must not claim TLS for the password.
	said := browsertest.Get(page, "read the sign-in method's words", chromedp.Evaluate[string](
		`document.querySelector('#signin-flow option[value="USER_PASSWORD_AUTH"]').textContent + ' / ' + document.getElementById('signin-flow-note').textContent`))
	if strings.Contains(said, "TLS") || !strings.Contains(said, "unencrypted") || !strings.Contains(said, "plain HTTP") {
		t.Errorf("the password method is described as %q on a plain-HTTP Cognito, want unencrypted, plain HTTP and no TLS", said)
	}

	signInPage(t, page, demo)
	got := browsertest.Get(page, "read the grants", chromedp.Evaluate[[]shownGrant](grantRows))
	less := func(a, b shownGrant) int { return strings.Compare(a.Bucket+"/"+a.Prefix, b.Bucket+"/"+b.Prefix) }
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("grants shown (-the endpoint's answer +the page):\n%s", diff)
	}
	if shown := browsertest.Get(page, "read the credentials column", chromedp.Evaluate[bool](`!document.getElementById('grants-set-column').hidden`)); shown {
		t.Error("one credential set, yet the page shows a column of sets")
	}

	s3c := s3.NewFromConfig(mototest.ConfigFor(st.Info.AWSEndpoint), func(o *s3.Options) { o.UsePathStyle = true })
	ctx := context.Background()
	name := mototest.Name(t, "from-chromium") + ".txt"
	text := "uploaded by the demo page in Chromium: " + name

	// A writable folder: its objects are listed; an upload lands in S3.
	browse(t, page, "demo-curated", "team-a/")
	if keys := listed(page); !slices.Contains(keys, "team-a/hello.txt") {
		t.Errorf("s3://demo-curated/team-a/ lists %v, want the seeded team-a/hello.txt", keys)
	}
	state, status := upload(page, name, text)
	if state != "ok" {
		t.Fatalf("upload to s3://demo-curated/team-a/: %s %q", state, status)
	}
	if keys := listed(page); !slices.Contains(keys, "team-a/"+name) {
		t.Errorf("after the upload the page lists %v, without team-a/%s", keys, name)
	}
	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("demo-curated"), Key: aws.String("team-a/" + name)})
	if err != nil {
		t.Fatalf("the uploaded object is not in moto's S3: %v", err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(body) != text || aws.ToString(obj.ContentType) != "text/plain; charset=utf-8" {
		t.Errorf("s3://demo-curated/team-a/%s holds %q (%s), want %q (text/plain; charset=utf-8)", name, body, aws.ToString(obj.ContentType), text)
	}
	if !slices.ContainsFunc(page.Requests(), func(r browsertest.Request) bool {
		return r.Method == http.MethodPut && strings.HasPrefix(r.URL, st.Info.AWSEndpoint+"/demo-curated/team-a/")
	}) {
		t.Error("the page's requests show no PUT to demo-curated: the request log below does not see uploads")
	}

	// A read-only bucket: listed, but an upload is refused and explained
	// in the page, before anything is sent to S3.
	before := objects(t, s3c, "demo-archive")
	browse(t, page, "demo-archive", "")
	if folders := browsertest.Get(page, "read the folders", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('li[data-testid="folder"]')].map((li) => li.dataset.prefix)`)); !slices.Contains(folders, "2025/") {
		t.Errorf("s3://demo-archive/ lists folders %v, want the seeded 2025/", folders)
	}
	if icons := browsertest.Get(page, "read the folders' icons", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('li[data-testid="folder"]')].map((li) => (li.querySelector('svg[data-testid="folder-icon"]') ? 'svg' : 'none') + ' ' + li.textContent.trim())`)); !slices.Equal(icons, []string{"svg 2025/"}) {
		t.Errorf("the folders are shown as %q, want an inline SVG icon and the name, no emoji", icons)
	}
	refusedName := "refused-" + name
	state, status = upload(page, refusedName, text)
	if state != "refused" {
		t.Fatalf("upload to the read-only s3://demo-archive/: %s %q, want refused", state, status)
	}
	for _, want := range []string{"Not uploaded", "demo-archive", "read-only", demo.ReadOnlyProject, "Nothing was sent to S3"} {
		if !strings.Contains(status, want) {
			t.Errorf("the refusal %q does not say %q", status, want)
		}
	}
	for _, r := range page.Requests() {
		if strings.Contains(r.URL, refusedName) || r.Method == http.MethodPut && strings.Contains(r.URL, "/demo-archive") {
			t.Errorf("the page sent %s %s for a refused upload", r.Method, r.URL)
		}
	}
	if after := objects(t, s3c, "demo-archive"); !slices.Equal(before, after) {
		t.Errorf("demo-archive changed under a refused upload: %v, then %v", before, after)
	}
	if thrown := page.Uncaught(); len(thrown) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", thrown)
	}

	// The screenshot (docs/demo-page.png, `make demo-screenshot`): the
	// grants, and a bucket's folders.
	browse(t, page, "demo-raw", "")
	page.Do("empty the upload form",
		chromedp.Evaluate[chromedp.Void](`for (const id of ['upload-name', 'upload-text']) document.getElementById(id).value = ''`))
	shot := os.Getenv(screenshotVar)
	if shot == "" {
		shot = filepath.Join(os.TempDir(), "credbroker-demo.png")
	}
	if err := page.Screenshot(shot); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot of the demo page: %s", shot)
}

// A grant on a bucket that S3 does not have, as the README's worked example
// gave before the seed created its bucket: moto refuses the browser's
// preflight, so the page gets nothing but "Failed to fetch", and says
// instead what may be wrong and the command that checks it.
func TestTheDemoPageExplainsABucketItCannotReach(t *testing.T) {
	page := browsertest.Open(t, 2*time.Minute)
	st := stacktest.Start(t, localstack.Options{WebPort: freePort(t), WebDir: builtDemo(t), Seed: true})
	missing := mototest.Name(t, "missing")
	newClient(st).put(t, map[string]types.AttributeValue{"pk": s("PROJECT#" + st.Demo.Project), "sk": s("BUCKET#" + missing)})
	until(t, st, signIn(t, st, st.Demo.Username, st.Demo.Password), func(a answer) bool {
		return slices.Contains(a.places(), missing+"/:write")
	})

	page.Do("open the page",
		chromedp.Navigate(st.Info.WebURL),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="signed-out"]`)))
	signInPage(t, page, st.Demo)
	row := fmt.Sprintf(`tr[data-testid="grant"][data-bucket=%q]`, missing)
	page.Do("browse s3://"+missing+"/",
		chromedp.Click(chromedp.CSS(row+` button[data-testid="browse"]`)),
		chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#objects[data-loaded="true"][data-location="s3://%s/"]`, missing))))
	shown := browsertest.Get(page, "read the listing's error", chromedp.Evaluate[map[string]string](
		`(() => { const e = document.getElementById('browse-error'); return { hidden: String(e.hidden), code: e.dataset.code ?? '', text: e.textContent }; })()`))
	if shown["hidden"] != "false" || shown["code"] != "unreachable" {
		t.Fatalf("listing s3://%s/ shows %v, want the error unreachable", missing, shown)
	}
	for _, want := range []string{
		`bucket "` + missing + `" does not exist`, "no CORS rule for this page's origin (" + st.Info.WebURL + ")",
		"`aws --endpoint-url " + st.Info.AWSEndpoint + " s3 ls s3://" + missing + "`", "`SEED=1 make run`",
	} {
		if !strings.Contains(shown["text"], want) {
			t.Errorf("the page says %q, without %q", shown["text"], want)
		}
	}
}

// signInPage signs the seeded user in on the open page and waits for the
// grants.
func signInPage(t *testing.T, page *browsertest.Page, demo *localstack.Demo) {
	t.Helper()
	page.Do("sign in",
		chromedp.SendKeys(chromedp.CSS("#username"), demo.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), demo.Password),
		chromedp.Click(chromedp.CSS("#signin-submit")),
		// Either outcome ends the wait: a refused sign-in fails at once.
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="signed-in"] #grants[data-loaded="true"], #signin-error:not([hidden])`)))
	if state := browsertest.Get(page, "read the page state", chromedp.Evaluate[string](`document.body.dataset.state`)); state != "signed-in" {
		t.Fatalf("not signed in: %q", browsertest.Get(page, "read the sign-in error", chromedp.Text(chromedp.CSS("#signin-error"))))
	}
}

// browse opens a granted place from its row of the grants table and waits
// for its listing.
func browse(t *testing.T, page *browsertest.Page, bucket, prefix string) {
	t.Helper()
	row := fmt.Sprintf(`tr[data-testid="grant"][data-bucket=%q][data-prefix=%q]`, bucket, prefix)
	page.Do("browse s3://"+bucket+"/"+prefix,
		chromedp.Click(chromedp.CSS(row+` button[data-testid="browse"]`)),
		chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#objects[data-loaded="true"][data-location="s3://%s/%s"]`, bucket, prefix))))
	if msg := browsertest.Get(page, "read the listing's error", chromedp.Evaluate[string](
		`document.getElementById('browse-error').hidden ? '' : document.getElementById('browse-error').textContent`)); msg != "" {
		t.Fatalf("listing s3://%s/%s failed in the page: %s", bucket, prefix, msg)
	}
}

// listed returns the keys of the objects the page lists.
func listed(page *browsertest.Page) []string {
	return browsertest.Get(page, "read the objects", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('li[data-testid="object"]')].map((li) => li.dataset.key)`))
}

// upload submits a text object in the current place and returns the
// outcome the page shows: its state and its words.
func upload(page *browsertest.Page, name, text string) (state, status string) {
	page.Do("upload "+name,
		// Empty the fields a previous upload left filled; then type.
		chromedp.Evaluate[chromedp.Void](`for (const id of ['upload-name', 'upload-text']) document.getElementById(id).value = ''`),
		chromedp.SendKeys(chromedp.CSS("#upload-name"), name),
		chromedp.SendKeys(chromedp.CSS("#upload-text"), text),
		chromedp.Click(chromedp.CSS("#upload-submit")),
		chromedp.WaitReady(chromedp.CSS(`#upload-status[data-state="ok"], #upload-status[data-state="refused"], #upload-status[data-state="error"]`)))
	state = browsertest.Get(page, "read the upload state", chromedp.Evaluate[string](`document.getElementById('upload-status').dataset.state`))
	status = browsertest.Get(page, "read the upload status", chromedp.Evaluate[string](`document.getElementById('upload-status').textContent`))
	return state, status
}

// objects lists a bucket's keys straight from moto.
func objects(t *testing.T, s3c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(out.Contents))
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}
