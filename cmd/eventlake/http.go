package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventlake/eventlake/internal/health"
	"github.com/eventlake/eventlake/internal/httpmw"
	"github.com/eventlake/eventlake/internal/tlsreload"
)

// newRegistry returns a registry with the Go and process collectors
// (process_resident_memory_bytes is what memory alerts and tests read).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// portTaken adds to err, when it says the address is taken, the flag
// that chooses another: each listener's own (--http, --pg-listen,
// --kafka-listen, --listen).
func portTaken(err error, flag string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (another process listens there: choose another address with %s; port 0 picks a free one)", err, flag)
	}
	return err
}

// listen opens the HTTP listener early so that ":0" resolves to a real
// port before the process reports ready. With http.tls it serves TLS, and
// SIGHUP reloads the certificate and key (a renewal takes no restart; a
// pair that fails to load keeps the one in use).
func listen(hc HTTPConfig, log *slog.Logger) (net.Listener, error) {
	var kp *tlsreload.Keypair
	if hc.TLS.CertFile != "" || hc.TLS.KeyFile != "" {
		var err error
		if kp, err = tlsreload.Load(hc.TLS.CertFile, hc.TLS.KeyFile); err != nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
	}
	ln, err := net.Listen("tcp", hc.Listen)
	if err != nil {
		return nil, portTaken(fmt.Errorf("listen on %s: %w", hc.Listen, err), "--http")
	}
	if kp == nil {
		return ln, nil
	}
	// The reloader lives as long as the listener: closing it (server
	// shutdown) ends it.
	ctx, cancel := context.WithCancel(context.Background())
	kp.Watch(ctx, log, "http")
	return &closeHook{Listener: tls.NewListener(ln, kp.ServerConfig()), hook: cancel}, nil
}

// closeHook runs hook once, when the listener is first closed.
type closeHook struct {
	net.Listener
	once sync.Once
	hook func()
}

func (l *closeHook) Close() error {
	l.once.Do(l.hook)
	return l.Listener.Close()
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
// Every answer carries a request id; cross-origin calls follow
// hc.CORSOrigins.
func serveHTTP(ctx context.Context, hc HTTPConfig, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: httpmw.RequestID(httpmw.CORS(hc.CORSOrigins, h)), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// addPprof mounts Go's profiler under /debug/pprof/ when http.pprof is
// set (listen on loopback or a private network: profiles reveal
// internals).
func addPprof(hc HTTPConfig, mux *http.ServeMux) {
	if !hc.Pprof {
		return
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// opsMux serves /metrics, /healthz (alive) and /readyz (every component
// of the process ready, else which and why) for roles without the query
// API, behind acc (pprof is for admins).
func opsMux(hc HTTPConfig, acc *access, g prometheus.Gatherer, checks *health.Checks) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	addPprof(hc, mux)
	mux.HandleFunc("GET /healthz", health.ServeAlive)
	mux.HandleFunc("GET /readyz", checks.ServeReady)
	return acc.protect(mux)
}

// pageURL is the address of the live page to log: with a token file, the
// login address naming the file whose contents go after ?token= (never
// the token itself: logs are read by more people than the data).
func pageURL(hc HTTPConfig, addr, tokenFile string) string {
	scheme := "http"
	if hc.TLS.CertFile != "" {
		scheme = "https"
	}
	u := scheme + "://" + addr + "/"
	if tokenFile != "" {
		u += "?token=<contents of " + tokenFile + ">"
	}
	return u
}
