package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki is the cluster's certificate authority: one CA signs the API
// server's serving certificate, every client certificate (the API server
// takes it as --client-ca-file) and the kubelet's serving certificate.
type pki struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	cert string // path of ca.crt
}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "exportreport-cluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca, key: key, cert: filepath.Join(dir, "ca.crt")}
	if err := writePEM(p.cert, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return p, p.writeKey("ca", key)
}

func (p *pki) writeKey(name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(p.dir, name+".key"), "PRIVATE KEY", der)
}

// issue writes NAME.crt and NAME.key: a certificate for cn (and the
// organizations, which Kubernetes reads as groups), for clients, servers
// (hosts: DNS names or IPs) or both.
func (p *pki) issue(name, cn string, orgs []string, hosts []string, usage ...x509.ExtKeyUsage) (crt, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.key)
	if err != nil {
		return "", "", fmt.Errorf("certificate %s: %w", name, err)
	}
	crt = filepath.Join(p.dir, name+".crt")
	if err := writePEM(crt, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return crt, filepath.Join(p.dir, name+".key"), p.writeKey(name, k)
}

// client issues a client certificate and writes a kubeconfig using it.
func (p *pki) client(name, cn string, orgs []string, server string) (string, error) {
	crt, key, err := p.issue(name, cn, orgs, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return "", err
	}
	return writeKubeconfig(filepath.Join(p.dir, name+".kubeconfig"), server, p.cert, &clientcmdapi.AuthInfo{
		ClientCertificate: crt, ClientKey: key,
	})
}

// writeKubeconfig writes a kubeconfig with one cluster, user and context.
func writeKubeconfig(path, server, ca string, user *clientcmdapi.AuthInfo) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["exportreport"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: ca}
	cfg.AuthInfos["user"] = user
	cfg.Contexts["exportreport"] = &clientcmdapi.Context{Cluster: "exportreport", AuthInfo: "user"}
	cfg.CurrentContext = "exportreport"
	return path, clientcmd.WriteToFile(*cfg, path)
}

// serviceAccountKey writes the key pair that signs ServiceAccount tokens.
func (p *pki) serviceAccountKey() (pub, priv string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	if err := p.writeKey("sa", k); err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", err
	}
	pub = filepath.Join(p.dir, "sa.pub")
	return pub, filepath.Join(p.dir, "sa.key"), writePEM(pub, "PUBLIC KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
