package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	psqlerr "github.com/jeroenrinzema/psql-wire/errors"
	"github.com/jeroenrinzema/psql-wire/pkg/buffer"
	"github.com/jeroenrinzema/psql-wire/pkg/types"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/internal/tlsreload"
)

// protocol names this front end in the audit log.
const protocol = "postgres"

// Config configures the Postgres front end.
type Config struct {
	// Listen is the address for --pg-listen; ":0" picks a port (Addr
	// names it).
	Listen string `yaml:"listen"`
	// TLS, when its files are set, serves TLS and refuses plaintext
	// connections: clients connect with sslmode=require or verify-full.
	// SIGHUP reloads the files.
	TLS TLSConfig `yaml:"tls"`
	// MaxConnections bounds the open connections; more are refused with
	// SQLSTATE 53300 (too_many_connections).
	MaxConnections int `yaml:"max_connections"`
}

// TLSConfig names a PEM certificate (chain) and key file.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults.
const (
	DefaultListen         = "127.0.0.1:5433"
	DefaultMaxConnections = 64
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	return c
}

// Validate checks c.
func (c Config) Validate() error {
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("pg: tls.cert_file and tls.key_file go together")
	}
	if c.MaxConnections < 0 {
		return errors.New("pg: max_connections must not be negative")
	}
	if _, _, err := net.SplitHostPort(c.Listen); c.Listen != "" && err != nil {
		return fmt.Errorf("pg: listen %q: %w", c.Listen, err)
	}
	return nil
}

// Server serves the query service over the PostgreSQL wire protocol
// (protocol 3.0): simple and extended queries, cleartext password
// authentication (user: the token's name; password: the token), cancel
// requests and TLS. The password travels as sent: outside loopback,
// configure TLS, which then is required.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	m       *metrics
	kp      *tlsreload.Keypair
	wire    *wire.Server

	mu       sync.Mutex
	ln       net.Listener
	closed   bool
	conns    map[*trackedConn]struct{}
	sessions map[int32]*session
	stop     chan struct{}
}

// New returns a server for cfg; Serve starts it.
func New(cfg Config, backend Backend, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, backend: backend, log: log.With(logkey.Component, "pgwire"), m: newMetrics(reg),
		conns: map[*trackedConn]struct{}{}, sessions: map[int32]*session{}, stop: make(chan struct{}),
	}
	opts := []wire.OptionFn{
		wire.Logger(s.log),
		wire.SessionAuthStrategy(s.authenticate),
		wire.BackendKeyData(func(ctx context.Context) (int32, int32) {
			if sess := sessionFrom(ctx); sess != nil {
				return sess.pid, sess.secret
			}
			return 0, 0
		}),
		wire.CancelRequest(s.cancelRequest),
		wire.CloseConn(func(ctx context.Context) error {
			if sess := sessionFrom(ctx); sess != nil {
				s.mu.Lock()
				delete(s.sessions, sess.pid)
				s.mu.Unlock()
			}
			return nil
		}),
		wire.TxStatus(func(ctx context.Context) types.ServerStatus {
			if sess := sessionFrom(ctx); sess != nil && sess.tx() {
				return types.ServerTransactionBlock
			}
			return types.ServerIdle
		}),
		wire.GlobalParameters(wire.Parameters{
			"TimeZone": "UTC", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres", "integer_datetimes": "on",
			"standard_conforming_strings": "on", "default_transaction_read_only": "on",
		}),
	}
	if cfg.TLS.CertFile != "" {
		kp, err := tlsreload.Load(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("pg: %w", err)
		}
		s.kp = kp
		// psql-wire offers TLS only with a certificate in Certificates;
		// GetConfigForClient serves the one in use after a reload.
		opts = append(opts, wire.TLSConfig(&tls.Config{
			MinVersion:         tls.VersionTLS12,
			Certificates:       []tls.Certificate{*kp.Certificate()},
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return kp.ServerConfig(), nil },
		}))
	}
	ws, err := wire.NewServer(s.parse, opts...)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", err)
	}
	s.wire = ws
	return s, nil
}

// Listen opens cfg.Listen, so that a ":0" port is known before Serve.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// Serve accepts connections on ln until Close, and reloads the TLS
// certificate on SIGHUP meanwhile. It returns after every connection has
// ended.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.mu.Unlock()
	if s.kp == nil && !isLoopback(ln.Addr()) {
		s.log.Warn("postgres listener without TLS on a non-loopback address: tokens travel in clear text; configure pg.tls",
			logkey.Addr, ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	if s.kp != nil {
		s.kp.Watch(ctx, s.log, "postgres")
	}
	err := s.wire.Serve(&trackingListener{Listener: ln, s: s})
	if err != nil {
		// The listener failed: end the connections too.
		_ = s.Close()
		err = fmt.Errorf("serve postgres connections: %w", err)
	}
	s.wire.Wait()
	cancel()
	_ = g.Wait()
	return err
}

// Run serves ln until ctx ends, then closes the server.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	var g errgroup.Group
	g.Go(func() error { return s.Serve(ln) })
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		return s.Close()
	})
	return g.Wait()
}

// Addr is the address Serve listens on (nil before Serve).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// ReloadTLS reads the certificate and key files again (what SIGHUP does).
func (s *Server) ReloadTLS() error {
	if s.kp == nil {
		return errors.New("pg: no TLS configured")
	}
	return s.kp.Reload()
}

// Close stops accepting, cancels running statements, closes every
// connection and waits for their goroutines. It may be called more than
// once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for _, sess := range s.sessions {
		sess.cancelRunning()
	}
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	err := s.wire.Close()
	s.wire.Wait()
	return err
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// authenticate asks for the password (the token) in clear text, after
// refusing plaintext connections when TLS is configured and connections
// over the limit, and opens the session.
func (s *Server) authenticate(ctx context.Context, w *buffer.Writer, r *buffer.Reader) (context.Context, error) {
	tc := connOf(ctx)
	params := wire.ClientParameters(ctx)
	user := params[wire.ParamUsername]
	refuse := func(outcome string, err error) (context.Context, error) {
		s.m.connections.WithLabelValues(outcome).Inc()
		werr := wire.WriteUnterminatedError(w, psqlerr.WithSeverity(err, psqlerr.LevelFatal))
		s.log.Info("refused a postgres connection", "reason", outcome, "user", user, logkey.Addr, remote(ctx), logkey.Err, err)
		if werr != nil {
			return ctx, werr
		}
		// io.EOF: psql-wire treats the end as a normal close; the refusal
		// is logged here.
		return ctx, io.EOF
	}
	if s.kp != nil && (tc == nil || !tc.tls) {
		return refuse("tls_required", errorf(codes.InvalidAuthorizationSpecification,
			"this server requires TLS: connect with sslmode=require or sslmode=verify-full"))
	}
	if s.cfg.MaxConnections > 0 && s.openSessions() >= s.cfg.MaxConnections {
		return refuse("too_many", errorf(codeTooManyConnections,
			"sorry, too many clients already: all %d connections are in use; close idle ones or raise pg.max_connections", s.cfg.MaxConnections))
	}
	w.Start(types.ServerAuth)
	w.AddInt32(3) // AuthenticationCleartextPassword
	if err := w.End(); err != nil {
		return ctx, err
	}
	t, _, err := r.ReadTypedMsg()
	if err != nil {
		return ctx, err
	}
	if t != types.ClientPassword {
		return refuse("protocol", errorf("08P01", "expected a password message"))
	}
	password, err := r.GetString()
	if err != nil {
		return ctx, err
	}
	p, err := s.backend.Authenticate(ctx, user, password)
	if err != nil {
		if isAuthError(err) {
			return refuse("auth_failed", errorf(codes.InvalidPassword, "password authentication failed for user %q", user))
		}
		return refuse("auth_error", pgError(err))
	}
	p.Client = remote(ctx)
	sess := &session{principal: p, database: params[wire.ParamDatabase]}
	if sess.database == "" {
		sess.database = "eventlake"
	}
	if err := s.register(sess); err != nil {
		return ctx, err
	}
	s.m.connections.WithLabelValues("accepted").Inc()
	w.Start(types.ServerAuth)
	w.AddInt32(0) // AuthenticationOk
	return withSession(ctx, sess), w.End()
}

func remote(ctx context.Context) string {
	if a := wire.RemoteAddress(ctx); a != nil {
		return a.String()
	}
	return ""
}

func (s *Server) openSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// register gives sess a process id and secret for cancel requests.
func (s *Server) register(sess *session) error {
	var b [8]byte
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("draw a cancel key: %w", err)
		}
		sess.pid = int32(binary.BigEndian.Uint32(b[:4]) & 0x7fffffff)
		sess.secret = int32(binary.BigEndian.Uint32(b[4:]))
		if _, taken := s.sessions[sess.pid]; !taken && sess.pid != 0 {
			s.sessions[sess.pid] = sess
			return nil
		}
	}
}

// cancelRequest cancels the running statement of the session with pid
// when the secret matches. As in Postgres, the client is told nothing.
func (s *Server) cancelRequest(_ context.Context, pid, secret int32) error {
	s.mu.Lock()
	sess := s.sessions[pid]
	s.mu.Unlock()
	var a, b [4]byte
	if sess != nil {
		binary.BigEndian.PutUint32(a[:], uint32(sess.secret))
	}
	binary.BigEndian.PutUint32(b[:], uint32(secret))
	if sess == nil || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		s.m.cancels.WithLabelValues("unknown").Inc()
		return nil
	}
	if sess.cancelRunning() {
		s.m.cancels.WithLabelValues("canceled").Inc()
	} else {
		s.m.cancels.WithLabelValues("idle").Inc()
	}
	return nil
}

// trackingListener tracks connections so that Close can end idle ones,
// and watches each one's first bytes to learn whether it asked for TLS.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	closed := l.s.closed
	if !closed {
		tc.tracked = true
		l.s.conns[tc] = struct{}{}
		l.s.m.open.Inc()
	}
	l.s.mu.Unlock()
	if closed {
		_ = c.Close()
	}
	return tc, nil
}

// Startup request codes (protocol-message-formats).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
)

// trackedConn is a client connection as accepted. Until the startup
// message it watches what the client sends: tls is set when the client's
// first request was an SSLRequest (psql-wire then wraps this connection
// in TLS).
type trackedConn struct {
	net.Conn
	s       *Server
	hdr     []byte
	sniffed bool
	tls     bool
	tracked bool
	once    sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.sniffed {
		c.sniff(p[:n])
	}
	return n, err
}

// sniff reads the length and code of the startup requests: a GSSENC
// request (answered 'N') may come before the SSLRequest.
func (c *trackedConn) sniff(b []byte) {
	for len(b) > 0 && !c.sniffed {
		take := min(8-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:take]...), b[take:]
		if len(c.hdr) < 8 {
			return
		}
		switch binary.BigEndian.Uint32(c.hdr[4:8]) {
		case codeGSSENCRequest:
			c.hdr = c.hdr[:0]
		case codeSSLRequest:
			c.tls, c.sniffed = true, true
		default:
			c.sniffed = true
		}
	}
}

// RemoteAddr carries the connection, for the authentication step.
func (c *trackedConn) RemoteAddr() net.Addr { return connAddr{Addr: c.Conn.RemoteAddr(), c: c} }

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if !c.tracked {
			return
		}
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.m.open.Dec()
		c.s.mu.Unlock()
	})
	return err
}

// connAddr is a remote address that knows its connection.
type connAddr struct {
	net.Addr
	c *trackedConn
}

func connOf(ctx context.Context) *trackedConn {
	if a, ok := wire.RemoteAddress(ctx).(connAddr); ok {
		return a.c
	}
	return nil
}
