package testharness

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// HTTPFaultProxy is a reverse proxy in front of a real HTTP server (an
// S3 server) that injects faults: a fraction of requests answered 503
// SlowDown without reaching the server, a delay before every request, or
// every connection refused. It keeps the Host header the client signed,
// so S3 signatures stay valid.
type HTTPFaultProxy struct {
	URL      string // http://127.0.0.1:port
	srv      *http.Server
	ln       net.Listener
	errRate  atomic.Uint64 // failing requests per thousand
	delay    atomic.Int64  // nanoseconds
	down     atomic.Bool
	Requests atomic.Int64
	Injected atomic.Int64

	mu       sync.Mutex
	record   string            // a request header to record (canonical name)
	recorded map[string]string // "METHOD /path" -> the header's value
}

// RecordHeader makes the proxy remember, for every request that carries
// header name, its method, path and the header's value (Recorded).
func (p *HTTPFaultProxy) RecordHeader(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record, p.recorded = http.CanonicalHeaderKey(name), map[string]string{}
}

// Recorded returns what RecordHeader asked for, by "METHOD /path".
func (p *HTTPFaultProxy) Recorded() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.recorded))
	for k, v := range p.recorded {
		out[k] = v
	}
	return out
}

// StartHTTPFaultProxy proxies to target (http://host:port) from a free
// loopback port until the test ends.
func StartHTTPFaultProxy(t testing.TB, target string) *HTTPFaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &HTTPFaultProxy{URL: "http://" + ln.Addr().String(), ln: ln}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 5 * time.Minute}
	rp.ErrorLog = nil
	director := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host
		director(r)
		r.Host = host // the client signed this Host
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
		p.mu.Lock()
		if p.record != "" {
			if v := r.Header.Get(p.record); v != "" {
				p.recorded[r.Method+" "+r.URL.Path] = v
			}
		}
		p.mu.Unlock()
		if p.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if d := time.Duration(p.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if pm := p.errRate.Load(); pm > 0 && rand.Uint64N(1000) < pm {
			p.Injected.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected by the test's fault proxy</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// SetErrorRate makes a fraction (0..1) of requests fail with 503.
func (p *HTTPFaultProxy) SetErrorRate(f float64) { p.errRate.Store(uint64(f * 1000)) }

// SetDelay delays every request by d before it is forwarded.
func (p *HTTPFaultProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetDown closes every new request's connection without an answer.
func (p *HTTPFaultProxy) SetDown(down bool) { p.down.Store(down) }

// Heal clears every fault.
func (p *HTTPFaultProxy) Heal() {
	p.SetErrorRate(0)
	p.SetDelay(0)
	p.SetDown(false)
}

// TCPFaultProxy forwards TCP connections to a real server (PostgreSQL,
// a Kafka broker) and can stall them: while stalled, bytes from the
// server are held back, so a request that was sent gets no answer (the
// client sees a timeout after sending: an unknown outcome). Unstall
// releases nothing that was held; it cuts the stalled connections, as a
// network partition that heals would.
type TCPFaultProxy struct {
	Addr    string
	target  string
	ln      net.Listener
	stalled atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

// StartTCPFaultProxy forwards a free loopback port to target (host:port).
func StartTCPFaultProxy(t testing.TB, target string) *TCPFaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPFaultProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.CutAll() })
	return p
}

// Port is the proxy's port.
func (p *TCPFaultProxy) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr)
	n, _ := strconv.Atoi(port)
	return n
}

func (p *TCPFaultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *TCPFaultProxy) serve(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, gated bool) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				for gated && p.stalled.Load() {
					time.Sleep(10 * time.Millisecond)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(s, c, false)
	go pipe(c, s, true)
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// Stall holds back every byte from the server until Unstall.
func (p *TCPFaultProxy) Stall() { p.stalled.Store(true) }

// Unstall cuts the connections that were stalled and lets new ones
// through.
func (p *TCPFaultProxy) Unstall() {
	p.CutAll()
	p.stalled.Store(false)
}

// CutAll closes every proxied connection.
func (p *TCPFaultProxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
