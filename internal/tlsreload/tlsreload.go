// Package tlsreload holds a TLS certificate and key loaded from files and
// replaced on reload (SIGHUP), so that a renewed certificate takes no
// restart. It is plumbing shared by the HTTP and Postgres listeners.
package tlsreload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/eventlake/eventlake/internal/logkey"
)

// Keypair is a certificate and key read from files; Reload reads them
// again. A pair that fails to load keeps the one in use.
type Keypair struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// Load reads the certificate and key files.
func Load(certFile, keyFile string) (*Keypair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("a TLS certificate file and key file go together")
	}
	k := &Keypair{certFile: certFile, keyFile: keyFile}
	return k, k.Reload()
}

// Reload reads the files again and, if they load, serves them from now on.
func (k *Keypair) Reload() error {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert.Store(&cert)
	return nil
}

// Certificate returns the pair in use.
func (k *Keypair) Certificate() *tls.Certificate { return k.cert.Load() }

// GetCertificate is tls.Config.GetCertificate.
func (k *Keypair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.cert.Load(), nil
}

// ServerConfig is a TLS 1.2+ server configuration that always serves the
// pair in use, also to clients that send no server name.
func (k *Keypair) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: k.GetCertificate}
}

// Watch reloads the pair on every SIGHUP until ctx ends; name says which
// listener's certificate it is in the log. It returns at once, with
// SIGHUP already caught: a SIGHUP right after it cannot end the process.
func (k *Keypair) Watch(ctx context.Context, log *slog.Logger, name string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := k.Reload(); err != nil {
					log.Error("reload the TLS certificate (the previous one stays in use)", "listener", name, logkey.Err, err)
					continue
				}
				log.Info("reloaded the TLS certificate", "listener", name, "cert_file", k.certFile)
			}
		}
	}()
}
