//go:build integration

package localstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// pageDir is a stand-in for web/dist/demo: these tests are about what the
// stack does around the page, the browser test uses the real one.
func pageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html><title>demo</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTheLocalStackServesTheDemoPageOnItsOwnOrigin(t *testing.T) {
	webPort := freePort(t)
	st := stacktest.Start(t, localstack.Options{WebPort: webPort, WebDir: pageDir(t)})
	page := "http://127.0.0.1:" + strconv.Itoa(webPort)

	t.Run("stack.json names the page", func(t *testing.T) {
		info, err := stackfile.Load(st.InfoPath())
		if err != nil {
			t.Fatal(err)
		}
		if info.WebURL != page {
			t.Errorf("webUrl %q, want %q", info.WebURL, page)
		}
	})

	t.Run("the page's config.json points at this stack", func(t *testing.T) {
		resp, err := http.Get(page + "/config.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"apiUrl": st.Info.APIURL, "region": st.Info.Region, "userPoolId": st.Info.UserPoolID,
			"userPoolClientId": st.Info.UserPoolClientID, "awsEndpoint": st.Info.AWSEndpoint, "signInFlow": "USER_PASSWORD_AUTH",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("config.json (-want +got):\n%s", diff)
		}
	})

	send := func(t *testing.T, method, origin string, h map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, st.Info.APIURL+"/auths/resources", nil)
		req.Header.Set("Origin", origin)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("the endpoint answers the page's preflight itself", func(t *testing.T) {
		resp := send(t, http.MethodOptions, page, map[string]string{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization,cache-control"})
		want := map[string]string{"Access-Control-Allow-Origin": page, "Access-Control-Allow-Methods": "GET",
			"Access-Control-Allow-Headers": "Authorization, Cache-Control", "Access-Control-Max-Age": "600"}
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("status %d, want 204", resp.StatusCode)
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %q, want %q", k, got, v)
			}
		}
	})
	t.Run("the page can read an error's challenge", func(t *testing.T) {
		resp := send(t, http.MethodGet, page, map[string]string{"Authorization": "Bearer not-a-token"})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %v, want 401 with a challenge", resp.StatusCode, resp.Header)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != page {
			t.Errorf("Access-Control-Allow-Origin %q, want %q", got, page)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "WWW-Authenticate") || !strings.Contains(got, "Retry-After") {
			t.Errorf("Access-Control-Expose-Headers %q", got)
		}
	})
	t.Run("another origin gets no CORS headers", func(t *testing.T) {
		for _, resp := range []*http.Response{
			send(t, http.MethodOptions, "http://127.0.0.1:1", map[string]string{"Access-Control-Request-Method": "GET"}),
			send(t, http.MethodGet, "http://127.0.0.1:1", map[string]string{"Authorization": "Bearer not-a-token"}),
		} {
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("%s answered with %s: %q", resp.Request.Method, k, resp.Header.Get(k))
				}
			}
		}
	})

	t.Run("a taken demo page port is reported with exit status 4 before anything starts", func(t *testing.T) {
		dir := t.TempDir()
		_, err := localstack.Start(context.Background(), localstack.Options{
			Moto: mototest.Endpoint(t), Port: freePort(t), WebPort: takenPort(t), WebDir: pageDir(t), Dir: dir,
		})
		if !errors.Is(err, motoserver.ErrPortInUse) || localstack.ExitCode(err) != exitcode.Environment || !strings.Contains(err.Error(), "WEB_PORT") {
			t.Errorf("Start = %v (exit %d), want the port in use, WEB_PORT named, exit %d", err, localstack.ExitCode(err), exitcode.Environment)
		}
		if _, err := os.Stat(filepath.Join(dir, "stack.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stack.json written: %v", err)
		}
	})

	st.Stop()
	if err := motoserver.CheckFree(webPort); err != nil {
		t.Errorf("the demo page's port is still taken after Stop: %v", err)
	}
}
