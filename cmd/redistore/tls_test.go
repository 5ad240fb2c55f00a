package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files in dir.
func pki(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistore test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caParsed, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caParsed, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.crt", "CERTIFICATE", caDER)
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// TestTLS: the command reaches a TLS server with --tls-ca, and one that
// asks for client certificates with --tls-cert and --tls-key.
func TestTLS(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		dir := t.TempDir()
		ca, srvCert, srvKey, cliCert, cliKey := pki(t, dir)
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := redistest.StartWith(t.TempDir(), redistest.Options{Install: in, Args: []string{
			"--tls-port", strconv.Itoa(port), "--tls-cert-file", srvCert, "--tls-key-file", srvKey,
			"--tls-ca-cert-file", ca, "--tls-auth-clients", "yes"}})
		if err != nil {
			if strings.Contains(err.Error(), "TLS") {
				t.Skipf("this redis-server was built without TLS: %v", err)
			}
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		url := "rediss://127.0.0.1:" + strconv.Itoa(port)
		env := map[string]string{envURL: url}

		r := runCmd(t, env, "stats", "--tls-ca", ca, "--tls-cert", cliCert, "--tls-key", cliKey)
		r.wantCode(t, 0)
		contains(t, "stats over TLS", r.stdout, "hash mode")

		r = runCmd(t, env, "stats", "--tls-ca", ca, "--timeout", "2s")
		r.wantCode(t, 1) // the server wants a client certificate
		r.wantOneErrorLine(t)
		r = runCmd(t, env, "stats", "--tls-cert", cliCert, "--tls-key", cliKey, "--timeout", "2s")
		r.wantCode(t, 1) // the system's CAs do not know the test CA
		contains(t, "stderr", r.stderr, "certificate")
	})
}
