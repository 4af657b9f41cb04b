package faults

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// headerRecorder records every Authorization header value sent through it.
type headerRecorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	values map[string]bool
}

func (h *headerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if v := req.Header.Get("Authorization"); v != "" {
		h.mu.Lock()
		h.values[v] = true
		h.mu.Unlock()
	}
	return h.next.RoundTrip(req)
}

func (h *headerRecorder) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for v := range h.values {
		out = append(out, v)
	}
	return out
}

// A TLS + htpasswd Distribution registry, reached directly (TLS verified
// against SSL_CERT_FILE or SSL_CERT_DIR) or through a plain-HTTP proxy that
// records the Authorization headers export-step really sent. No password,
// Docker config auth field, Authorization value or the word Authorization
// ever appears in stdout or stderr, at either log level (info, -quiet
// warnings), nor in report2results' output and termination message.
// Missing or wrong credentials exit 1 with no report (a stale one removed);
// an untrusted certificate exits 1 with a message saying it is the
// certificate; -insecure-registry skips verification for the host named only.
func TestCredentialsNeverPrinted(t *testing.T) {
	t.Parallel()
	var pw [12]byte
	_, err := rand.Read(pw[:])
	assert.NilError(t, err)
	password := "pw-" + hex.EncodeToString(pw[:])
	reg := distribution.Start(t, distribution.WithTLS(), distribution.WithBasicAuth("exporter", password))
	rec := &headerRecorder{next: reg.Transport(), values: map[string]bool{}}
	proxy := Start(t, reg.URL(), rec)
	src, want := newLayout(t)

	wrongAuth := base64.StdEncoding.EncodeToString([]byte("exporter:wrong-" + password))
	direct := distribution.WriteDockerConfig(t, reg.Host(), reg.Auth())
	viaProxy := distribution.WriteDockerConfig(t, proxy.Host(), reg.Auth())
	wrong := distribution.WriteDockerConfig(t, reg.Host(), wrongAuth)
	secrets := []string{password, reg.Auth(), wrongAuth, "wrong-" + password, "Authorization", "authorization", "Basic "}

	tests := []struct {
		name     string
		host     string // registry part of the tag
		env      []string
		flags    []string
		wantCode int
		wantErr  []string // in stderr
	}{
		{name: "via proxy, info logs", host: proxy.Host(), env: []string{"DOCKER_CONFIG=" + viaProxy},
			flags: []string{"-insecure-registry", proxy.Host()}},
		{name: "via proxy, -quiet", host: proxy.Host(), env: []string{"DOCKER_CONFIG=" + viaProxy},
			flags: []string{"-quiet", "-insecure-registry", proxy.Host()}},
		{name: "SSL_CERT_FILE", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + direct, "SSL_CERT_FILE=" + reg.CAFile}},
		{name: "SSL_CERT_DIR", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + direct, "SSL_CERT_DIR=" + reg.CertDir}},
		{name: "-insecure-registry the host: unverified TLS", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + direct},
			flags: []string{"-insecure-registry", reg.Host()}},
		{name: "no credentials", host: reg.Host(), env: []string{"SSL_CERT_FILE=" + reg.CAFile},
			wantCode: 1, wantErr: []string{"401 Unauthorized"}},
		{name: "wrong password", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + wrong, "SSL_CERT_FILE=" + reg.CAFile},
			wantCode: 1, wantErr: []string{"401 Unauthorized"}},
		{name: "certificate not trusted", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + direct},
			wantCode: 1, wantErr: []string{"tls: failed to verify certificate", "certificate signed by unknown authority"}},
		{name: "-insecure-registry another host: still verified", host: reg.Host(), env: []string{"DOCKER_CONFIG=" + direct},
			flags: []string{"-insecure-registry", "localhost:1"}, wantCode: 1, wantErr: []string{"certificate signed by unknown authority"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			reportPath := filepath.Join(work, "report.toml")
			writeStale(t, reportPath)
			tag := tc.host + "/secret/app:case" + string(rune('a'+i))
			args := append(append([]string{"-source", "oci:" + src, "-report", reportPath}, tc.flags...), tag)
			res := runCommand(t, tc.env, exportStep, args...)
			assert.Equal(t, res.code, tc.wantCode, res.stderr)
			output := res.stdout + res.stderr
			for _, want := range tc.wantErr {
				assert.Check(t, is.Contains(res.stderr, want))
			}
			if tc.wantCode != 0 {
				assertNoFile(t, reportPath)
			} else {
				assert.Check(t, is.Equal(strings.TrimSpace(res.stdout), want.String()))
				assertServedDirect(t, reg, tag, want)
				term := filepath.Join(work, "termination-log")
				r2r := runCommand(t, tc.env, report2results, append([]string{"-report", reportPath, "-results-dir", t.TempDir(),
					"-termination-message", term, "-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES"}, tc.flags...)...)
				assert.Check(t, is.Equal(r2r.code, 0), r2r.stderr)
				msg, err := os.ReadFile(term)
				assert.Check(t, err)
				output += r2r.stdout + r2r.stderr + string(msg)
			}
			for _, secret := range append(secrets, rec.seen()...) {
				assert.Check(t, !strings.Contains(output, secret), "%q is in the output", secret)
			}
		})
	}
	// The proxy cases prove the greps look for what was really sent.
	assert.Check(t, len(rec.seen()) > 0, "no Authorization header passed the proxy")
	for _, r := range proxy.Requests() {
		if strings.Contains(r.Path, "/manifests/") && r.Method == http.MethodPut {
			assert.Check(t, r.Authorization, "a manifest PUT without credentials")
		}
	}
}
