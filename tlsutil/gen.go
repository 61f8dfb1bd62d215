package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// devValidity is how long the certificates of `tenfold dev --tls` last;
// they are regenerated when less than devRenewBefore is left.
const (
	devValidity    = 90 * 24 * time.Hour
	devRenewBefore = 24 * time.Hour
)

// DevFiles are the PEM files GenerateDev writes in its directory.
type DevFiles struct {
	// CA is the throwaway CA's certificate: every node and client trusts it.
	CA string
	// NodeCert and NodeKey serve clients and peers, and authenticate a
	// node to its peers (server and client usage).
	NodeCert, NodeKey string
	// ClientCert and ClientKey are for etcdctl and clientv3.
	ClientCert, ClientKey string
}

// DevPaths returns the paths of the files GenerateDev writes in dir.
func DevPaths(dir string) DevFiles {
	return DevFiles{CA: filepath.Join(dir, "ca.crt"), NodeCert: filepath.Join(dir, "node.crt"), NodeKey: filepath.Join(dir, "node.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key")}
}

// GenerateDev makes a throwaway CA (ECDSA P-256) and a node and a client
// certificate signed by it in dir, valid for hosts (IP addresses or DNS
// names; localhost, 127.0.0.1 and ::1 are always included). Files that
// are already there, load, and are not about to expire are kept, so a
// restarted dev cluster keeps the CA its clients trust. The CA's key is
// not written: nothing can be signed by it later.
func GenerateDev(dir string, hosts []string) (DevFiles, error) {
	f := DevPaths(dir)
	if devFilesValid(f, hosts) {
		return f, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("tls: create %s: %w", dir, err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "tenfold dev CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(devValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return f, err
	}
	sans := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	if err := issue(ca, caKey, "tenfold node", sans, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, f.NodeCert, f.NodeKey); err != nil {
		return f, err
	}
	if err := issue(ca, caKey, "root", nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, f.ClientCert, f.ClientKey); err != nil {
		return f, err
	}
	return f, nil
}

// Issue signs a certificate for cn and hosts with ca and caKey, and
// writes it and its key (tests make a second CA's certificates, or a
// replacement certificate, this way). The certificate serves and
// authenticates as a client.
func Issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, hosts []string, certFile, keyFile string) error {
	return issue(ca, caKey, cn, hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, certFile, keyFile)
}

// NewCA makes a CA certificate and key in memory, writing the certificate
// to certFile.
func NewCA(cn, certFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(devValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, hosts []string, usage []x509.ExtKeyUsage, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(devValidity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// Key first, then certificate: a reloading node that sees the new
	// certificate finds its key already in place.
	if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

// writePEM writes through a temporary file and a rename, so a reader never
// sees half a file.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("tls: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// devFilesValid reports whether the dev files exist, load as pairs, name
// every host, and last at least devRenewBefore more.
func devFilesValid(f DevFiles, hosts []string) bool {
	node, err := tls.LoadX509KeyPair(f.NodeCert, f.NodeKey)
	if err != nil || node.Leaf == nil {
		return false
	}
	for _, h := range hosts {
		if node.Leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	for _, pair := range [][2]string{{f.NodeCert, f.NodeKey}, {f.ClientCert, f.ClientKey}} {
		c, err := tls.LoadX509KeyPair(pair[0], pair[1])
		if err != nil || c.Leaf == nil || time.Until(c.Leaf.NotAfter) < devRenewBefore {
			return false
		}
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return false
	}
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return false
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	return err == nil && time.Until(ca.NotAfter) >= devRenewBefore
}
