// Package tlsutil loads the certificates named by etcd's TLS flags, keeps
// them fresh (a certificate replaced on disk is used by the next
// connection, without a restart), and builds the server and client
// tls.Configs of tenfold's client and peer listeners.
//
// Verification is done here rather than by crypto/tls's built-in client
// certificate check, for two reasons: the trusted CA is re-read with the
// certificate, and a refused peer is logged with the reason (a handshake
// failure inside gRPC is otherwise silent).
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Info names the files of one TLS endpoint (client or peer), as etcd's
// flags do. The zero value means TLS is off.
type Info struct {
	// CertFile and KeyFile are this node's certificate and key (PEM).
	CertFile, KeyFile string
	// TrustedCAFile holds the CA certificates (PEM) that verify the other
	// side: clients (with ClientCertAuth), or the server a node dials.
	TrustedCAFile string
	// ClientCertAuth requires every connecting client to present a
	// certificate signed by TrustedCAFile.
	ClientCertAuth bool
	// Peer selects the flag names used in errors: --peer-cert-file etc.
	Peer bool
}

// Enabled reports whether any TLS file is set.
func (i Info) Enabled() bool {
	return i.CertFile != "" || i.KeyFile != "" || i.TrustedCAFile != "" || i.ClientCertAuth
}

// flag returns the command-line flag name of a setting ("cert-file"...).
func (i Info) flag(name string) string {
	if i.Peer {
		return "--peer-" + name
	}
	return "--" + name
}

// Validate checks that the flags make sense together, without reading the
// files.
func (i Info) Validate() error {
	if !i.Enabled() {
		return nil
	}
	switch {
	case i.CertFile == "" && i.KeyFile == "":
		return fmt.Errorf("%s and %s are required when %s or %s is set", i.flag("cert-file"), i.flag("key-file"), i.flag("trusted-ca-file"), i.flag("client-cert-auth"))
	case i.CertFile == "":
		return fmt.Errorf("%s is set but %s is not: give both", i.flag("key-file"), i.flag("cert-file"))
	case i.KeyFile == "":
		return fmt.Errorf("%s is set but %s is not: give both", i.flag("cert-file"), i.flag("key-file"))
	case i.ClientCertAuth && i.TrustedCAFile == "":
		return fmt.Errorf("%s needs %s: the CA that signs the certificates to accept", i.flag("client-cert-auth"), i.flag("trusted-ca-file"))
	}
	return nil
}

// reloadCheckInterval bounds how often the files are stat'ed: at most
// once per interval, on a new connection.
const reloadCheckInterval = 100 * time.Millisecond

// Source holds the current certificate and CA pool of one Info, reloading
// them when a file's modification time or size changes.
type Source struct {
	info   Info
	logger *slog.Logger

	mu        sync.Mutex
	checked   time.Time
	stamps    [3]fileStamp
	cert      *tls.Certificate
	pool      *x509.CertPool // nil: system roots (dialing), none (serving)
	reloadErr string         // last reload error logged, to log each once
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewSource validates info and loads its files; the error names the file
// and the flag when a file is missing, unreadable or does not match.
func NewSource(info Info, logger *slog.Logger) (*Source, error) {
	if err := info.Validate(); err != nil {
		return nil, err
	}
	if !info.Enabled() {
		return nil, errors.New("tlsutil: TLS is not enabled")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{info: info, logger: logger}
	stamps, err := s.stat()
	if err != nil {
		return nil, err
	}
	cert, pool, err := load(info)
	if err != nil {
		return nil, err
	}
	s.stamps, s.cert, s.pool, s.checked = stamps, cert, pool, time.Now()
	return s, nil
}

func (s *Source) stat() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, f := range []struct{ path, flag string }{{s.info.CertFile, "cert-file"}, {s.info.KeyFile, "key-file"}, {s.info.TrustedCAFile, "trusted-ca-file"}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return out, fmt.Errorf("%s %s: %w", s.info.flag(f.flag), f.path, err)
		}
		out[i] = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	return out, nil
}

// load reads and checks the files of info.
func load(info Info) (*tls.Certificate, *x509.CertPool, error) {
	certPEM, err := os.ReadFile(info.CertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", info.flag("cert-file"), info.CertFile, err)
	}
	keyPEM, err := os.ReadFile(info.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", info.flag("key-file"), info.KeyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s with %s %s: %w (is the key the certificate's, and both PEM?)",
			info.flag("cert-file"), info.CertFile, info.flag("key-file"), info.KeyFile, err)
	}
	if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
		return nil, nil, fmt.Errorf("%s %s: certificate expired at %s", info.flag("cert-file"), info.CertFile, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	if info.TrustedCAFile == "" {
		return &cert, nil, nil
	}
	caPEM, err := os.ReadFile(info.TrustedCAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", info.flag("trusted-ca-file"), info.TrustedCAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("%s %s: no PEM certificate in the file", info.flag("trusted-ca-file"), info.TrustedCAFile)
	}
	return &cert, pool, nil
}

// current returns the certificate and pool, reloading them first if a file
// changed. A failed reload (say, a cert written before its key) keeps the
// previous pair and logs the reason once.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.checked) < reloadCheckInterval {
		return s.cert, s.pool
	}
	s.checked = now
	stamps, err := s.stat()
	if err == nil && stamps == s.stamps {
		return s.cert, s.pool
	}
	var cert *tls.Certificate
	var pool *x509.CertPool
	if err == nil {
		cert, pool, err = load(s.info)
	}
	if err != nil {
		if msg := err.Error(); msg != s.reloadErr {
			s.reloadErr = msg
			s.logger.Warn("TLS files changed but cannot be loaded; keeping the previous certificate", "err", err)
		}
		return s.cert, s.pool
	}
	s.logger.Info("TLS certificate reloaded", "cert", s.info.CertFile)
	s.stamps, s.cert, s.pool, s.reloadErr = stamps, cert, pool, ""
	return s.cert, s.pool
}

// ServerConfig returns the config of a listener: the current certificate
// on every handshake and, with ClientCertAuth, a client certificate
// verified against the current CA. nextProtos is the ALPN list.
func (s *Source) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: nextProtos, Certificates: []tls.Certificate{*cert}}
			if s.info.ClientCertAuth {
				remote := ""
				if hello.Conn != nil {
					remote = hello.Conn.RemoteAddr().String()
				}
				cfg.ClientAuth = tls.RequestClientCert
				cfg.VerifyConnection = func(cs tls.ConnectionState) error {
					err := verifyChain(cs.PeerCertificates, pool, "", x509.ExtKeyUsageClientAuth)
					if err != nil {
						s.logger.Warn("refused a TLS connection: client certificate not accepted", "remote", remote,
							"flag", s.info.flag("client-cert-auth"), "err", err)
					}
					return err
				}
			}
			return cfg, nil
		},
	}
}

// ClientConfig returns the config of a node dialing another node: it
// presents the current certificate and verifies the server against the
// current CA (the system roots when no CA file is set) and the dialed
// host name or IP.
func (s *Source) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			return cert, nil
		},
		// The chain is checked in VerifyConnection, against the CA pool
		// of the moment (so a replaced CA file takes effect), instead of
		// a RootCAs fixed when the config was built.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := s.current()
			if pool == nil {
				sys, err := x509.SystemCertPool()
				if err != nil {
					return fmt.Errorf("tls: no %s and no system roots: %w", s.info.flag("trusted-ca-file"), err)
				}
				pool = sys
			}
			err := verifyChain(cs.PeerCertificates, pool, cs.ServerName, x509.ExtKeyUsageServerAuth)
			if err != nil {
				s.logger.Warn("refused a TLS server: certificate not accepted", "server", cs.ServerName, "err", err)
			}
			return err
		},
	}
}

// verifyChain checks certs[0] against pool, for usage, and (when host is
// set) for host.
func verifyChain(certs []*x509.Certificate, pool *x509.CertPool, host string, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("tls: no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("tls: certificate of %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// ClientConfig builds the TLS config of an etcd client (etcdctl's
// --cacert, --cert and --key): caFile verifies the server (system roots
// when empty); certFile and keyFile, when set, authenticate the client.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert %s: %w", caFile, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in the file", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together: give both or neither")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert %s with --key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
