package faults

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// result is one export-step run.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// export runs export-step with -insecure-registry host, a report in work
// and a clean environment (no credentials); env entries override.
func export(t *testing.T, src, reportPath, host string, env []string, tags ...string) result {
	t.Helper()
	args := append([]string{"-quiet", "-source", "oci:" + src, "-report", reportPath, "-insecure-registry", host}, tags...)
	return runCommand(t, env, exportStep, args...)
}

// runCommand runs a command with HOME and DOCKER_CONFIG in empty
// directories and CNB_REPORT_PATH empty; env entries override. It fails the
// test if the command cannot run or runs past 3 minutes.
func runCommand(t *testing.T, env []string, command string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir(), "CNB_REPORT_PATH=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v (after %s)\nstderr: %s", command, err, r.took, r.stderr)
	}
	t.Logf("%s %s: exit %d in %s\nstderr: %s", filepath.Base(command), strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), r.stderr)
	return r
}

// newLayout writes a random two-layer image as an OCI layout and returns
// the directory and the image's digest.
func newLayout(t *testing.T) (string, v1.Hash) {
	dir, d, _ := newLayoutImage(t)
	return dir, d
}

// newLayoutImage is newLayout, also returning the image.
func newLayoutImage(t *testing.T) (string, v1.Hash, v1.Image) {
	t.Helper()
	return randomLayout(t, 64<<10, 2)
}

// randomLayout writes a random image of layers layers of size bytes each
// into a new OCI layout and returns the layout, the image's digest and the
// image.
func randomLayout(t *testing.T, size int64, layers int64) (string, v1.Hash, v1.Image) {
	t.Helper()
	img, err := random.Image(size, layers)
	assert.NilError(t, err)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img))
	d, err := img.Digest()
	assert.NilError(t, err)
	return dir, d, img
}

type reportFile struct {
	Image struct {
		Tags   []string `toml:"tags"`
		Digest string   `toml:"digest"`
	} `toml:"image"`
}

// assertPushed checks the report names tag with digest want, and that the
// registry (asked directly, not through the proxy) serves want for tag.
func assertPushed(t *testing.T, reg *distribution.Registry, reportPath, tag string, want v1.Hash) {
	t.Helper()
	var r reportFile
	_, err := toml.DecodeFile(reportPath, &r)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(r.Image.Tags, []string{tag}))
	assert.Check(t, is.Equal(r.Image.Digest, want.String()))
	assertServedDirect(t, reg, tag, want)
}

// assertServedDirect checks that the registry, asked directly (not through
// a proxy), serves want for tag's repository and tag.
func assertServedDirect(t *testing.T, reg *distribution.Registry, tag string, want v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(tag)
	assert.NilError(t, err)
	direct, err := name.ParseReference(reg.Host() + "/" + ref.Context().RepositoryStr() + ":" + ref.Identifier())
	assert.NilError(t, err)
	desc, err := remote.Head(direct, reg.RemoteOptions()...)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(desc.Digest, want), "the registry serves another digest")
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	_, err := os.Stat(path)
	assert.Check(t, errors.Is(err, fs.ErrNotExist), "%s exists (stat: %v)", path, err)
}

// writeStale writes a report as an earlier run would have left it.
func writeStale(t *testing.T, path string) {
	t.Helper()
	stale := "[image]\ntags = [\"example.com/old:tag\"]\ndigest = \"sha256:" + strings.Repeat("ab", 32) + "\"\n"
	assert.NilError(t, os.WriteFile(path, []byte(stale), 0o644))
}

// count counts the recorded requests matching method and path substring.
func count(reqs []Request, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && strings.Contains(r.Path, path) {
			n++
		}
	}
	return n
}

// registryBehindProxy starts the registry behind a fault proxy and writes
// a random image as an OCI layout; it returns them, the image's digest and
// the digest of its first layer.
func registryBehindProxy(t *testing.T) (*distribution.Registry, *Proxy, string, v1.Hash, v1.Hash) {
	t.Helper()
	reg := distribution.Start(t)
	proxy := Start(t, reg.URL(), nil)
	src, want, img := newLayoutImage(t)
	layers, err := img.Layers()
	assert.NilError(t, err)
	layer, err := layers[0].Digest()
	assert.NilError(t, err)
	return reg, proxy, src, want, layer
}

// Transient statuses are retried: three 503s in a row on any kind of
// request (the first ping included), or a 429, and the export succeeds
// with the right digest.
func TestTransientStatusRetried(t *testing.T) {
	t.Parallel()
	reg, proxy, src, want, layer := registryBehindProxy(t)

	tests := []struct {
		name string
		rule Rule
	}{
		{name: "503x3 from the first request (the ping)", rule: Rule{Status: 503, Times: 3}},
		// export-step checks that a blob exists and starts its upload in
		// one request: a POST offering it for mounting (pkg/export/internal/registry/upload.go).
		{name: "503x3 on one blob's existence check and upload start", rule: Rule{Method: http.MethodPost, Path: "/blobs/uploads/", Query: "mount=" + url.QueryEscape(layer.String()), Status: 503, Times: 3}},
		{name: "503x3 on starting a blob upload", rule: Rule{Method: http.MethodPost, Path: "/blobs/uploads/", Status: 503, Times: 3}},
		// The monolithic PUT that sends one blob whole and finishes its upload.
		{name: "503x3 on one blob's upload", rule: Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Query: "digest=" + url.QueryEscape(layer.String()), Status: 503, Times: 3}},
		{name: "503x3 on finishing a blob upload", rule: Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Status: 503, Times: 3}},
		{name: "503x3 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 503, Times: 3}},
		// The HEAD of the tag before the push (does it name the image
		// already?); the manifest PUT's digest is the verification.
		{name: "502x3 on the manifest HEAD", rule: Rule{Method: http.MethodHead, Path: "/manifests/", Status: 502, Times: 3}},
		{name: "429x2 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 429, Times: 2}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			proxy.Add(tc.rule)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			tag := proxy.Host() + "/transient/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, proxy.Host(), nil, tag)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Check(t, is.Equal(strings.TrimSpace(res.stdout), want.String()))
			faults := proxy.Faults()
			assert.Check(t, is.Equal(faults, tc.rule.Times), "the faults were not all hit")
			assertPushed(t, reg, reportPath, tag, want)
		})
	}
}

// A 429 with Retry-After: the next try of that request comes no sooner than
// the registry asked.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	proxy := Start(t, reg.URL(), nil)
	src, want := newLayout(t)

	const wait = 2 * time.Second
	tests := []struct {
		name         string
		method, path string
	}{
		{name: "ping", method: http.MethodGet, path: "/v2/"},
		{name: "manifest PUT", method: http.MethodPut, path: "/manifests/"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			proxy.Add(Rule{Method: tc.method, Path: tc.path, Status: 429, Times: 1,
				Header: http.Header{"Retry-After": {"2"}}})
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			tag := proxy.Host() + "/ratelimited/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, proxy.Host(), nil, tag)
			assert.Equal(t, res.code, 0, res.stderr)
			assertPushed(t, reg, reportPath, tag, want)

			var faultEnd time.Time
			var next *Request
			reqs := proxy.Requests()
			for i, r := range reqs {
				if r.Fault {
					faultEnd = r.End
					for j := i + 1; j < len(reqs); j++ {
						if reqs[j].Method == r.Method && reqs[j].Path == r.Path {
							next = &reqs[j]
							break
						}
					}
					break
				}
			}
			assert.Assert(t, next != nil, "the 429 was not retried: %v", reqs)
			gap := next.Start.Sub(faultEnd)
			t.Logf("retried after %s (Retry-After: 2)", gap)
			assert.Check(t, gap >= wait, "retried after %s, before Retry-After's %s", gap, wait)
		})
	}
}

// Auth and validation errors are final: each such request is sent once,
// the export fails with exit 1 and leaves no report (a stale one removed).
func TestClientErrorsNotRetried(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	proxy := Start(t, reg.URL(), nil)
	src, _ := newLayout(t)

	tests := []struct {
		name string
		rule Rule
	}{
		{name: "401 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 401}},
		{name: "403 on starting a blob upload", rule: Rule{Method: http.MethodPost, Path: "/blobs/uploads/", Status: 403}},
		{name: "400 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 400}},
		{name: "400 on finishing a blob upload", rule: Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Status: 400, Code: "DIGEST_INVALID"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			proxy.Add(tc.rule)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := proxy.Host() + "/refused/app" + string(rune('a'+i)) + ":v1"
			res := export(t, src, reportPath, proxy.Host(), nil, tag)
			assert.Equal(t, res.code, 1, res.stderr)
			assertNoFile(t, reportPath)
			// Blobs upload in parallel: at most one try per blob (2 layers
			// and a config), one for the manifest.
			faults := proxy.Faults()
			max := 1
			if strings.Contains(tc.rule.Path, "blobs") {
				max = 3
			}
			assert.Check(t, faults >= 1 && faults <= max, "%d requests got the %d, want 1..%d (retried?)", faults, tc.rule.Status, max)
			assert.Check(t, is.Contains(res.stderr, tag))
		})
	}
}

// maxFailTime is the documented bound (docs/reliability.md) for giving up
// on a registry that keeps failing or cannot be reached.
const maxFailTime = 60 * time.Second

// A registry that always answers 5xx, or a port nobody listens on: exit 1
// within maxFailTime, no report, a stale report removed.
func TestPersistentFailureBounded(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	proxy := Start(t, reg.URL(), nil)
	proxy.Add(Rule{Status: 503})
	src, _ := newLayout(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	refused := ln.Addr().String()
	assert.NilError(t, ln.Close())

	tests := []struct {
		name, host string
	}{
		{name: "persistent 503", host: proxy.Host()},
		{name: "connection refused", host: refused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := tc.host + "/down/app:v1"
			res := export(t, src, reportPath, tc.host, nil, tag)
			assert.Equal(t, res.code, 1, res.stderr)
			assertNoFile(t, reportPath)
			assert.Check(t, is.Contains(res.stderr, tc.host))
			assert.Check(t, res.took < maxFailTime, "gave up after %s, documented bound %s", res.took, maxFailTime)
		})
	}
}

// Retry policy, as docs/reliability.md states it: at most retryTries tries
// per request, waits of 0.5 s doubling with up to 10 % jitter, or what
// Retry-After asks when longer (capped at 10 s); no wait after the last try.
const (
	retryTries      = 5
	retryJitter     = 1.1
	retryAfterLimit = 10 * time.Second
)

// retryBound is the documented longest time the waits between the tries of
// one request take when it keeps failing, Retry-After ra (0: none).
func retryBound(ra time.Duration) time.Duration {
	var total time.Duration
	backoff := 500 * time.Millisecond
	for range retryTries - 1 {
		total += max(time.Duration(float64(backoff)*retryJitter), min(ra, retryAfterLimit))
		backoff *= 2
	}
	return total
}

// A registry that keeps failing one request of the push, on the blob
// upload or the manifest PUT, with or without Retry-After: that request is
// tried exactly retryTries times (one retry layer: before, a blob upload's
// POST went through go-containerregistry's retrying transport inside
// export-step's own retries, about 25 tries), the export fails with exit 1
// and no report, within the documented bound (the waits, plus generous
// slack for the requests themselves on a busy machine) and, with
// Retry-After, no sooner than it asks. With a -timeout shorter than what
// Retry-After asks, it gives up at once.
func TestPersistentFaultOneRetryLayer(t *testing.T) {
	t.Parallel()
	_, proxy, src, _, layer := registryBehindProxy(t)
	oneBlob := "mount=" + url.QueryEscape(layer.String())

	const slack = 5 * time.Second
	retryAfter2 := http.Header{"Retry-After": {"2"}}
	tests := []struct {
		name         string
		rule         Rule
		ra           time.Duration
		args         []string
		tries        int
		maxTook      time.Duration
		stderr       string
		method, path string
	}{
		{name: "503 on one blob's upload (its POST)", rule: Rule{Method: http.MethodPost, Path: "/blobs/uploads/", Query: oneBlob, Status: 503},
			tries: retryTries, maxTook: retryBound(0) + slack, stderr: "UNAVAILABLE"},
		{name: "503 on one blob's upload PUT", rule: Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Query: "digest=" + url.QueryEscape(layer.String()), Status: 503},
			tries: retryTries, maxTook: retryBound(0) + slack, stderr: "UNAVAILABLE"},
		{name: "503 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 503},
			tries: retryTries, maxTook: retryBound(0) + slack, stderr: "UNAVAILABLE"},
		{name: "429 Retry-After: 2 on one blob's upload", rule: Rule{Method: http.MethodPost, Path: "/blobs/uploads/", Query: oneBlob, Status: 429, Header: retryAfter2},
			ra: 2 * time.Second, tries: retryTries, maxTook: retryBound(2*time.Second) + slack, stderr: "TOOMANYREQUESTS"},
		{name: "429 Retry-After: 2 on the manifest PUT", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 429, Header: retryAfter2},
			ra: 2 * time.Second, tries: retryTries, maxTook: retryBound(2*time.Second) + slack, stderr: "TOOMANYREQUESTS"},
		{name: "503 Retry-After: 10 on the manifest PUT, -timeout 3s", rule: Rule{Method: http.MethodPut, Path: "/manifests/", Status: 503, Header: http.Header{"Retry-After": {"10"}}},
			args: []string{"-timeout", "3s"}, tries: 1, maxTook: 3*time.Second + slack, stderr: "-timeout 3s"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			proxy.Add(tc.rule)
			reportPath := filepath.Join(t.TempDir(), "report.toml")
			writeStale(t, reportPath)
			tag := proxy.Host() + "/persistent/app" + string(rune('a'+i)) + ":v1"
			args := append([]string{"-quiet", "-source", "oci:" + src, "-report", reportPath, "-insecure-registry", proxy.Host()}, tc.args...)
			res := runCommand(t, nil, exportStep, append(args, tag)...)
			assert.Equal(t, res.code, 1, res.stderr)
			assertNoFile(t, reportPath)
			assert.Check(t, is.Contains(res.stderr, tc.stderr))
			assert.Check(t, is.Equal(strings.Count(res.stderr, "\n"), 1), "stderr is not one line")
			faulted := proxy.Faults()
			assert.Check(t, is.Equal(faulted, tc.tries), "the failing request was tried %d times, want %d", faulted, tc.tries)
			assert.Check(t, res.took < tc.maxTook, "gave up after %s, documented bound %s", res.took, tc.maxTook)
			if tc.ra > 0 {
				assert.Check(t, res.took >= time.Duration(tc.tries-1)*tc.ra, "gave up after %s: Retry-After %s was not waited for", res.took, tc.ra)
			}
		})
	}
}
