package tlsreload

import (
	"os"
	"testing"

	"github.com/eventlake/eventlake/internal/testharness"
)

func TestReload(t *testing.T) {
	dir := t.TempDir()
	c := testharness.NewTestCerts(t, dir)
	if _, err := Load(c.CertFile, ""); err == nil {
		t.Error("a certificate without a key loaded")
	}
	k, err := Load(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	first := k.Certificate()

	// A broken file keeps the pair in use.
	if err := os.WriteFile(c.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(); err == nil {
		t.Error("a broken certificate loaded")
	}
	if got, _ := k.GetCertificate(nil); got != first {
		t.Error("a failed reload replaced the certificate")
	}

	next := testharness.NewTestCerts(t, t.TempDir())
	k2, err := Load(next.CertFile, next.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next.CertFile, c.CertFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next.KeyFile, c.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if string(k.Certificate().Certificate[0]) != string(k2.Certificate().Certificate[0]) {
		t.Error("the reload did not serve the new certificate")
	}
}
