package distribution

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestStartPushStopRestart(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{name: "plain"},
		{name: "tls", opts: []Option{WithTLS()}},
		{name: "basic auth", opts: []Option{WithBasicAuth("alice", "s3cret-pass")}},
		{name: "tls and basic auth", opts: []Option{WithTLS(), WithBasicAuth("bob", "an0ther-pass")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := Start(t, tc.opts...)
			assert.Assert(t, strings.HasPrefix(reg.Host(), "127.0.0.1:"), reg.Host())

			ref, err := name.ParseReference(reg.Host() + "/test/image:one")
			assert.NilError(t, err)
			img, err := random.Image(512, 2)
			assert.NilError(t, err)
			want, err := img.Digest()
			assert.NilError(t, err)
			assert.NilError(t, remote.Write(ref, img, reg.RemoteOptions()...))

			desc, err := remote.Head(ref, reg.RemoteOptions()...)
			assert.NilError(t, err)
			assert.Equal(t, desc.Digest, want)
			assert.DeepEqual(t, reg.Catalog(t), []string{"test/image"})

			if reg.User != "" {
				_, err := remote.Head(ref, remote.WithTransport(reg.Transport()))
				var terr *transport.Error
				assert.Assert(t, errors.As(err, &terr), "anonymous HEAD: %v", err)
				assert.Equal(t, terr.StatusCode, http.StatusUnauthorized)
			}

			host := reg.Host()
			reg.Stop()
			_, err = net.Dial("tcp", host)
			assert.Assert(t, err != nil, "something still listens on %s after Stop", host)
			reg.Stop() // a second Stop is harmless

			reg.Restart()
			assert.Equal(t, reg.Host(), host)
			desc, err = remote.Head(ref, reg.RemoteOptions()...)
			assert.NilError(t, err, "the image pushed before Restart is gone")
			assert.Equal(t, desc.Digest, want)
		})
	}
}

func TestTLSCertificates(t *testing.T) {
	reg := Start(t, WithTLS())
	assert.Equal(t, reg.Scheme(), "https")
	assert.Equal(t, reg.URL(), "https://"+reg.Host())

	// Without the CA the server certificate is not trusted.
	_, err := http.Get(reg.URL() + "/v2/")
	assert.ErrorContains(t, err, "certificate")

	ca, err := os.ReadFile(reg.CAFile)
	assert.NilError(t, err)
	crt, err := os.ReadFile(filepath.Join(reg.CertDir, "ca.crt"))
	assert.NilError(t, err)
	assert.DeepEqual(t, crt, ca)
}

func TestDockerConfig(t *testing.T) {
	reg := Start(t, WithBasicAuth("carol", "pa55-word"))
	dir := reg.DockerConfig(t)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(string(data), reg.Auth()))

	// The Docker config keychain (what export-step uses) finds the credentials.
	t.Setenv("DOCKER_CONFIG", dir)
	registry, err := name.NewRegistry(reg.Host())
	assert.NilError(t, err)
	auth, err := authn.DefaultKeychain.Resolve(registry)
	assert.NilError(t, err)
	cfg, err := auth.Authorization()
	assert.NilError(t, err)
	assert.Equal(t, cfg.Username, "carol")
	assert.Equal(t, cfg.Password, "pa55-word")
}

// recordingTB records Skipf and Fatalf instead of stopping the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                          {}
func (r *recordingTB) Skipf(format string, args ...any) { r.skipped = format }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestUnavailablePolicy(t *testing.T) {
	tests := []struct {
		ci          string
		wantSkipped bool
	}{
		{ci: "", wantSkipped: true},
		{ci: "true", wantSkipped: false},
		{ci: "1", wantSkipped: false},
	}
	for _, tc := range tests {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := &recordingTB{TB: t}
			Unavailable(rec, "frobnicator missing")
			assert.Equal(t, rec.skipped != "", tc.wantSkipped)
			assert.Equal(t, rec.failed != "", !tc.wantSkipped)
		})
	}
}

func TestRequireDocker(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	rec := &recordingTB{TB: t}
	RequireDocker(rec)
	assert.Assert(t, is.Contains(rec.failed, "CI is set"))
}
