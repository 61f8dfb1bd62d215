package tlsutil

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a CA and a node certificate in a temp dir.
type pki struct {
	dir                string
	ca, cert, key      string
	issueAgain         func(t *testing.T) // replaces cert and key with a new pair
	otherCert, otherKy string             // a pair from another CA
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, ca: filepath.Join(dir, "ca.crt"), cert: filepath.Join(dir, "node.crt"), key: filepath.Join(dir, "node.key"),
		otherCert: filepath.Join(dir, "other.crt"), otherKy: filepath.Join(dir, "other.key")}
	ca, caKey, err := NewCA("test CA", p.ca)
	if err != nil {
		t.Fatal(err)
	}
	p.issueAgain = func(t *testing.T) {
		if err := Issue(ca, caKey, "node", []string{"127.0.0.1"}, p.cert, p.key); err != nil {
			t.Fatal(err)
		}
	}
	p.issueAgain(t)
	other, otherKey, err := NewCA("other CA", filepath.Join(dir, "other-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Issue(other, otherKey, "intruder", []string{"127.0.0.1"}, p.otherCert, p.otherKy); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInputNamesFlagAndFile(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		info Info
		want []string
	}{
		{"missing cert", Info{CertFile: filepath.Join(p.dir, "nope.crt"), KeyFile: p.key}, []string{"--cert-file", "nope.crt"}},
		{"missing peer key", Info{CertFile: p.cert, KeyFile: filepath.Join(p.dir, "nope.key"), Peer: true}, []string{"--peer-key-file", "nope.key"}},
		{"key of another cert", Info{CertFile: p.cert, KeyFile: p.otherKy}, []string{"--cert-file", "--key-file", "other.key"}},
		{"cert without key", Info{CertFile: p.cert}, []string{"--key-file"}},
		{"client auth without CA", Info{CertFile: p.cert, KeyFile: p.key, ClientCertAuth: true}, []string{"--client-cert-auth", "--trusted-ca-file"}},
		{"peer client auth without CA", Info{CertFile: p.cert, KeyFile: p.key, ClientCertAuth: true, Peer: true}, []string{"--peer-client-cert-auth", "--peer-trusted-ca-file"}},
		{"CA not PEM", Info{CertFile: p.cert, KeyFile: p.key, TrustedCAFile: p.key}, []string{"--trusted-ca-file", "no PEM certificate"}},
		{"CA alone", Info{TrustedCAFile: p.ca}, []string{"--cert-file", "--key-file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSource(tc.info, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := NewSource(Info{CertFile: p.cert, KeyFile: p.key, TrustedCAFile: p.ca, ClientCertAuth: true}, nil); err != nil {
		t.Fatalf("good files refused: %v", err)
	}
}

// serve runs a TLS echo listener with cfg; it returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	addr, _ := serveRecording(t, cfg)
	return addr
}

// serveRecording is serve that also reports the serial number of each
// client certificate it echoed to.
func serveRecording(t *testing.T, cfg *tls.Config) (string, <-chan string) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	clients := make(chan string, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := c.Read(b); err == nil {
					if certs := c.(*tls.Conn).ConnectionState().PeerCertificates; len(certs) > 0 {
						select {
						case clients <- certs[0].SerialNumber.String():
						default:
						}
					}
					c.Write(b)
				}
			}()
		}
	}()
	return l.Addr().String(), clients
}

// roundTrip dials addr with cfg and exchanges one byte: with TLS 1.3 a
// refused client certificate shows only on the first read.
func roundTrip(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		return nil, err
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	cs := c.ConnectionState()
	return &cs, nil
}

func TestMutualTLSAndReload(t *testing.T) {
	p := newPKI(t)
	src, err := NewSource(Info{CertFile: p.cert, KeyFile: p.key, TrustedCAFile: p.ca, ClientCertAuth: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, clientSerials := serveRecording(t, src.ServerConfig())
	good := src.ClientConfig()
	cs, err := roundTrip(addr, good)
	if err != nil {
		t.Fatalf("client with the CA's certificate refused: %v", err)
	}
	first := cs.PeerCertificates[0].SerialNumber
	firstClient := <-clientSerials

	noCert, err := ClientConfig(p.ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(addr, noCert); err == nil {
		t.Fatal("client without a certificate accepted with ClientCertAuth")
	}
	intruder, err := ClientConfig(p.ca, p.otherCert, p.otherKy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(addr, intruder); err == nil {
		t.Fatal("client with another CA's certificate accepted")
	}
	// A server with another CA's certificate is refused by the dialer.
	otherSrc, err := NewSource(Info{CertFile: p.otherCert, KeyFile: p.otherKy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(serve(t, otherSrc.ServerConfig()), good); err == nil {
		t.Fatal("dialer accepted a server certificate from another CA")
	}

	// Replace the files: the next connection gets the new certificate.
	p.issueAgain(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := roundTrip(addr, good)
		if err != nil {
			t.Fatalf("after reload: %v", err)
		}
		client := <-clientSerials
		if cs.PeerCertificates[0].SerialNumber.Cmp(first) != 0 {
			// The dialing side (a node dialing a peer) presents the new
			// certificate too.
			if client == firstClient {
				t.Fatal("the server side reloaded but the client side still presents the old certificate")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections still see the old certificate")
		}
		time.Sleep(reloadCheckInterval)
	}
}

func TestReloadKeepsOldPairOnBadFiles(t *testing.T) {
	p := newPKI(t)
	src, err := NewSource(Info{CertFile: p.cert, KeyFile: p.key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := src.current()
	// A key that does not match the certificate (half a rotation).
	b, err := os.ReadFile(p.otherKy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(reloadCheckInterval + 10*time.Millisecond)
	if cur, _ := src.current(); cur != old {
		t.Fatal("a mismatched key replaced the working pair")
	}
}

func TestGenerateDevKeepsValidFiles(t *testing.T) {
	dir := t.TempDir()
	f, err := GenerateDev(dir, []string{"10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(f.CA)
	if _, err := GenerateDev(dir, []string{"10.1.2.3"}); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(f.CA)
	if string(ca1) != string(ca2) {
		t.Fatal("a second run replaced a valid CA")
	}
	// A host the node certificate does not name makes new files.
	if _, err := GenerateDev(dir, []string{"10.9.9.9"}); err != nil {
		t.Fatal(err)
	}
	ca3, _ := os.ReadFile(f.CA)
	if string(ca3) == string(ca1) {
		t.Fatal("node certificate without the new host kept")
	}
	c, err := tls.LoadX509KeyPair(f.NodeCert, f.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.VerifyHostname("10.9.9.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(f.CA, f.ClientCert, f.ClientKey); err != nil {
		t.Fatal(err)
	}
}
