package export

import (
	"crypto/tls"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// newRegistryTransport returns base, or when nil a clone of
// remote.DefaultTransport that verifies TLS for every host except the
// insecure ones. TLS verification is switched off per request host, never
// globally; SSL_CERT_FILE and SSL_CERT_DIR work through Go's system roots.
func newRegistryTransport(base http.RoundTripper, insecure hostSet) http.RoundTripper {
	if base != nil {
		return base
	}
	secure := remote.DefaultTransport.(*http.Transport).Clone()
	if len(insecure) == 0 {
		return secure
	}
	unverified := secure.Clone()
	if unverified.TLSClientConfig == nil {
		unverified.TLSClientConfig = &tls.Config{}
	}
	unverified.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts given with -insecure-registry
	return &hostTLSTransport{secure: secure, unverified: unverified, insecure: insecure}
}

// hostTLSTransport sends requests to insecure hosts through a transport
// that skips TLS verification, and all others through a verifying one.
type hostTLSTransport struct {
	secure, unverified http.RoundTripper
	insecure           hostSet
}

func (t *hostTLSTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.insecure.match(req.URL.Host) {
		return t.unverified.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}
