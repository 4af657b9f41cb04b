package integration

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// A push to a registry that is down fails with exit 1 and leaves no report,
// also removing a report an earlier run left; after the registry comes back
// (same port, same storage) what was pushed before is still there and the
// export succeeds again.
func TestFailedPushLeavesNoReport(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	img := newImage(t, "failed-push", amd64)
	src := writeLayout(t, img)
	want := descriptorOf(t, img)
	export := func(t *testing.T, work, tag string) (int, string) {
		reportPath := filepath.Join(work, "report.toml")
		res := run(t, "export-step", work, nil, "-source", "oci:"+src, "-report", reportPath, "-insecure-registry", reg.Host(), tag)
		return res.ExitCode, res.Stderr()
	}

	before := reg.Host() + "/down/app:before"
	code, stderr := export(t, t.TempDir(), before)
	assert.Equal(t, code, 0, stderr)

	reg.Stop()
	tests := []struct {
		name      string
		oldReport bool
	}{
		{name: "no report before"},
		{name: "an old report is removed", oldReport: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			reportPath := filepath.Join(work, "report.toml")
			if tc.oldReport {
				old := "[image]\ntags = [\"" + before + "\"]\ndigest = \"" + want.Digest.String() + "\"\n"
				assert.NilError(t, os.WriteFile(reportPath, []byte(old), 0o644))
			}
			code, stderr := export(t, work, reg.Host()+"/down/app:during")
			assert.Equal(t, code, 1, stderr)
			assert.Check(t, is.Contains(stderr, reg.Host()), "the error names the registry")
			assertNoFile(t, reportPath)
		})
	}

	reg.Restart()
	ref, err := name.ParseReference(before)
	assert.NilError(t, err)
	desc, err := remote.Head(ref, reg.RemoteOptions()...)
	assert.NilError(t, err)
	assert.Equal(t, desc.Digest, want.Digest)

	work := t.TempDir()
	code, stderr = export(t, work, reg.Host()+"/down/app:after")
	assert.Equal(t, code, 0, stderr)
	r := readReport(t, filepath.Join(work, "report.toml"))
	assertReportDescribes(t, r, []string{reg.Host() + "/down/app:after"}, want)
	assertServed(t, reg, r)
}

// A registry with TLS (a private CA) and htpasswd basic auth: credentials
// come from DOCKER_CONFIG and the CA from SSL_CERT_FILE; anything missing or
// wrong fails with exit 1 and no report; credentials never reach the output.
func TestTLSAndBasicAuth(t *testing.T) {
	t.Parallel()
	password := "pw-" + randomHex(t)
	reg := distribution.Start(t, distribution.WithTLS(), distribution.WithBasicAuth("exporter", password))
	img := newImage(t, "tls-auth", amd64)
	src := writeLayout(t, img)
	want := descriptorOf(t, img)
	goodConfig := reg.DockerConfig(t)
	wrongAuth := base64.StdEncoding.EncodeToString([]byte("exporter:wrong-" + password))
	wrongConfig := distribution.WriteDockerConfig(t, reg.Host(), wrongAuth)
	secrets := []string{password, reg.Auth(), wrongAuth, "wrong-" + password}

	tests := []struct {
		name     string
		env      []string
		wantCode int
	}{
		{name: "credentials and CA", env: []string{"DOCKER_CONFIG=" + goodConfig, "SSL_CERT_FILE=" + reg.CAFile}},
		{name: "no credentials", env: []string{"SSL_CERT_FILE=" + reg.CAFile}, wantCode: 1},
		{name: "wrong password", env: []string{"DOCKER_CONFIG=" + wrongConfig, "SSL_CERT_FILE=" + reg.CAFile}, wantCode: 1},
		{name: "CA not trusted", env: []string{"DOCKER_CONFIG=" + goodConfig}, wantCode: 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			reportPath := filepath.Join(work, "report.toml")
			tag := reg.Host() + "/secure/app:case" + string(rune('a'+i))
			res := run(t, "export-step", work, tc.env, "-source", "oci:"+src, "-report", reportPath, tag)
			assertExit(t, res, tc.wantCode)
			for _, secret := range secrets {
				assert.Check(t, !strings.Contains(res.Stdout()+res.Stderr(), secret), "a credential is in the output")
			}
			if tc.wantCode != 0 {
				assertNoFile(t, reportPath)
				return
			}
			r := readReport(t, reportPath)
			assertReportDescribes(t, r, []string{tag}, want)
			assertServed(t, reg, r, "--cert-dir", reg.CertDir, "--creds", reg.User+":"+reg.Password)
		})
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [12]byte
	_, err := rand.Read(b[:])
	assert.NilError(t, err)
	return hex.EncodeToString(b[:])
}
