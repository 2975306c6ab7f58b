// Package web serves the live page at / of the query listener (`eventlake
// dev`, `eventlake query`): revenue and orders per minute as they change,
// fed by the hot tier's SSE stream, and the state of the lake and of
// ingest from GET /v1/status, the JSON `eventlake status` also reads.
//
// The page sits beside the query service at the end of the data flow and
// reads only its public HTTP API. Its files are embedded in the binary:
// plain HTML, CSS and JavaScript drawing SVG, no build step, nothing
// fetched from another origin, so it works offline and under a strict
// Content-Security-Policy. Logging in (?token=) and the session cookie
// are the auth.Gate's; this package only tells a logged-in browser (the
// request carries a principal) from one that is not.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/eventlake/eventlake/auth"
)

//go:embed assets
var assets embed.FS

// AssetsPrefix is the path of the page's static files: served without
// credentials (they hold no data).
const AssetsPrefix = "/assets/"

// csp allows the page's own files and API only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options say what the process serves besides the query service.
type Options struct {
	// Stream: the hot tier's SSE stream of revenue per minute is there
	// (else the page reads the figures every few seconds).
	Stream bool
}

// Handler serves GET / (the live page to a logged-in browser, a login hint
// otherwise) and GET /assets/.
func Handler(opts Options) http.Handler {
	sub, _ := fs.Sub(assets, "assets") // the directory is embedded above
	files := http.StripPrefix(AssetsPrefix, http.FileServerFS(sub))
	var page bytes.Buffer
	_ = template.Must(template.ParseFS(sub, "index.html")).Execute(&page, opts)
	index := page.Bytes()
	hint := template.Must(template.ParseFS(sub, "login.html"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		header(w)
		if _, ok := auth.From(r.Context()); !ok {
			var b bytes.Buffer
			_ = hint.Execute(&b, struct{ Failed bool }{r.URL.Query().Has(auth.LoginFailed)})
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write(b.Bytes())
			return
		}
		_, _ = w.Write(index)
	})
	mux.Handle("GET "+AssetsPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	return mux
}

func header(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
