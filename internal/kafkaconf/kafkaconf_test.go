package kafkaconf

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	th "github.com/eventlake/eventlake/internal/testharness"
)

// TestSecuredBrokers connects to the embedded broker with SASL (each
// mechanism) and TLS: the right settings produce a record, wrong ones get
// an error from CheckAccess that says what was refused, and a broker that
// is down is not an error (clients wait for it).
func TestSecuredBrokers(t *testing.T) {
	certs := th.NewTestCerts(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain-user", "p1"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "p2"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "p3"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := TLSConfig{Enabled: true, CAFile: certs.CAFile}
	cfgOf := func(tc TLSConfig, mech, user, pass string) Config {
		cfg := Config{Brokers: c.ListenAddrs(), TLS: tc, SASL: SASLConfig{Mechanism: mech, Username: user, Password: pass}}
		cfg.Defaults()
		return cfg
	}
	ctx := context.Background()
	for _, u := range []struct{ mech, user, pass string }{{"PLAIN", "plain-user", "p1"}, {"SCRAM-SHA-256", "scram256", "p2"}, {"SCRAM-SHA-512", "scram512", "p3"}} {
		cfg := cfgOf(good, u.mech, u.user, u.pass)
		if err := cfg.CheckAccess(ctx); err != nil {
			t.Fatalf("%s: %v", u.mech, err)
		}
		opts, err := cfg.Opts(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(u.mech)}).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", u.mech, err)
		}
		cl.Close()
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"wrong password", cfgOf(good, "SCRAM-SHA-256", "scram256", "nope"), "wrong username, password or mechanism"},
		{"wrong mechanism", cfgOf(good, "SCRAM-SHA-512", "scram256", "p2"), "wrong username, password or mechanism"},
		{"unknown CA", cfgOf(TLSConfig{Enabled: true}, "PLAIN", "plain-user", "p1"), "TLS to"},
		{"wrong server name", cfgOf(TLSConfig{Enabled: true, CAFile: certs.CAFile, ServerName: "kafka.example"}, "PLAIN", "plain-user", "p1"), "TLS to"},
		{"TLS without SASL", cfgOf(good, "", "", ""), "set kafka.sasl"},
		{"plaintext to TLS", cfgOf(TLSConfig{}, "PLAIN", "plain-user", "p1"), "check kafka.tls.enabled"},
	} {
		err := tc.cfg.CheckAccess(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: CheckAccess = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}

	// Settings that cannot work are refused before connecting.
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"unknown mechanism", cfgOf(good, "GSSAPI", "u", "p")},
		{"no password", cfgOf(good, "PLAIN", "u", "")},
		{"missing CA file", cfgOf(TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}, "", "", "")},
		{"files without enabled", cfgOf(TLSConfig{CAFile: certs.CAFile}, "", "", "")},
	} {
		if err := tc.cfg.Validate(); err == nil {
			t.Fatalf("%s: Validate accepted it", tc.name)
		}
	}

	// Nobody listening: not an access error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down := Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p"}}
	down.Defaults()
	down.DialTimeout = 500 * 1e6
	if err := down.CheckAccess(ctx); err != nil {
		t.Fatalf("a broker that is down: %v", err)
	}
}
