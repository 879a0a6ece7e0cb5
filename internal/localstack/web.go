package localstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/samtemplate"
)

// The demo page (web/dist/demo, docs/operations.md "Local stack") is served on its own
// origin, as a page on AWS would be, so that the browser applies CORS to its
// calls to the credential endpoint exactly as it would there.

// webConfig is the page's config.json (web/README.md "Demo page").
type webConfig struct {
	APIURL           string `json:"apiUrl"`
	Region           string `json:"region"`
	UserPoolID       string `json:"userPoolId"`
	UserPoolClientID string `json:"userPoolClientId"`
	AWSEndpoint      string `json:"awsEndpoint"`
	// moto runs the SRP exchange but never checks the proof, so SRP would
	// accept any password here.
	SignInFlow string `json:"signInFlow"`
}

// contentTypes are the types of the files a built page has; anything else
// goes out as application/octet-stream, which a browser does not render.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".map":  "application/json",
	".txt":  "text/plain; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

// webHandler serves the files of one directory, read-only: GET and HEAD,
// no listings, nothing outside the directory (os.Root also refuses symbolic
// links that lead out of it), no dot files, and config.json generated for
// this stack. Nothing is cached: every run has a new user pool.
type webHandler struct {
	root    *os.Root
	config  []byte
	headers map[string]string
}

// openWeb opens the page's directory; configure must be called before it
// serves.
func openWeb(dir string) (*webHandler, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("demo page: %w", err)
	}
	if st, err := root.Stat("index.html"); err != nil || !st.Mode().IsRegular() {
		root.Close()
		return nil, fmt.Errorf("demo page: %s has no index.html: build it with `make web`", dir)
	}
	return &webHandler{root: root}, nil
}

// configure makes config.json and the headers point at the stack.
func (h *webHandler) configure(info Info) error {
	cfg, err := json.MarshalIndent(webConfig{
		APIURL: info.APIURL, Region: info.Region, UserPoolID: info.UserPoolID, UserPoolClientID: info.UserPoolClientID,
		AWSEndpoint: info.AWSEndpoint, SignInFlow: "USER_PASSWORD_AUTH",
	}, "", "  ")
	if err != nil {
		return err
	}
	h.config = append(cfg, '\n')
	h.headers = map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		// The page loads only its own files and calls only the endpoint
		// and moto (Cognito and S3). form-action 'none': should the
		// script fail, the sign-in form is never submitted as a URL.
		"Content-Security-Policy": "default-src 'self'; connect-src 'self' " + info.APIURL + " " + info.AWSEndpoint +
			"; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
	return nil
}

func (h *webHandler) Close() error { return h.root.Close() }

func (h *webHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	for k, v := range h.headers {
		hdr.Set(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if name == "config.json" {
		hdr.Set("Content-Type", contentTypes[".json"])
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(h.config))
		return
	}
	f, ok := h.open(name)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		ctype = "application/octet-stream"
	}
	hdr.Set("Content-Type", ctype)
	http.ServeContent(w, r, name, time.Time{}, f)
}

// open opens a regular file of the directory by its URL path (already
// unescaped, so "%2e%2e" arrives as ".."), or reports false.
func (h *webHandler) open(name string) (*os.File, bool) {
	if !fs.ValidPath(name) || strings.Contains(name, `\`) {
		return nil, false
	}
	for el := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(el, ".") {
			return nil, false
		}
	}
	f, err := h.root.Open(name)
	if err != nil {
		return nil, false
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, false
	}
	return f, true
}

// withCORS answers for the credential endpoint what API Gateway answers
// with the template's CorsConfiguration: a preflight at the API layer,
// before any route (the function itself serves only GET), and the allow and
// expose headers on every answer to an allowed origin, errors included.
// Other origins get no CORS headers, so their browsers refuse the answers.
func withCORS(c samtemplate.Cors, next http.Handler) http.Handler {
	allow := make(map[string]bool, len(c.AllowOrigins))
	for _, o := range c.AllowOrigins {
		allow[o] = true
	}
	methods, headers := strings.Join(c.AllowMethods, ", "), strings.Join(c.AllowHeaders, ", ")
	expose, maxAge := strings.Join(c.ExposeHeaders, ", "), strconv.Itoa(c.MaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The answer depends on Origin, for every origin.
		h.Set("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := allow[origin]
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", methods)
				h.Set("Access-Control-Allow-Headers", headers)
				h.Set("Access-Control-Max-Age", maxAge)
			}
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			if expose != "" {
				h.Set("Access-Control-Expose-Headers", expose)
			}
		}
		next.ServeHTTP(w, r)
	})
}
