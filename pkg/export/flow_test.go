package export

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/report"
)

type request struct {
	Method, Path, Query string
	Status              int
}

func (r request) String() string { return r.Method + " " + r.Path }

// testRegistry is go-containerregistry's in-process registry behind an
// httptest server, recording every request it answers.
type testRegistry struct {
	srv  *httptest.Server
	host string
	mu   sync.Mutex
	reqs []request
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// newTestRegistry starts a registry; wrap (optional) sits between the
// recorder and the registry, to misbehave.
func newTestRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	return startTestRegistry(t, wrap, false)
}

func startTestRegistry(t *testing.T, wrap func(http.Handler) http.Handler, withTLS bool) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	var h http.Handler = registry.New(registry.Logger(newDiscardLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sr := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(sr, req)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Status: sr.status})
		r.mu.Unlock()
	}))
	r.srv.Config.ErrorLog = newDiscardLogger() // TLS handshake failures are expected in some tests
	if withTLS {
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(strings.TrimPrefix(r.srv.URL, "http://"), "https://")
	return r
}

func (r *testRegistry) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func (r *testRegistry) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// count counts requests with this method whose path contains part.
func (r *testRegistry) count(method, part string) int {
	n := 0
	for _, q := range r.requests() {
		if q.Method == method && strings.Contains(q.Path, part) {
			n++
		}
	}
	return n
}

// on lists the requests for exactly this path.
func (r *testRegistry) on(path string) []string {
	var out []string
	for _, q := range r.requests() {
		if q.Path == path {
			out = append(out, q.Method)
		}
	}
	return out
}

// ref is host/repo:tag on this registry.
func (r *testRegistry) ref(repoTag string) string { return r.host + "/" + repoTag }

var fastRetry = remote.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 3, Cap: 10 * time.Millisecond}

// testOptions exports art to tags with a hermetic keychain, no progress and
// a report in a fresh directory.
func testOptions(t *testing.T, art Artifact, tags ...string) Options {
	t.Helper()
	return Options{
		Artifact:     art,
		Tags:         tags,
		Jobs:         DefaultJobs,
		Quiet:        true,
		Stderr:       &bytes.Buffer{},
		ReportPath:   filepath.Join(t.TempDir(), "report.toml"),
		Keychain:     authn.NewMultiKeychain(), // anonymous; ignores ~/.docker
		RetryBackoff: fastRetry,
	}
}

func seededImage(t *testing.T, seed int64, size, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers, random.WithSource(rand.NewSource(seed)))
	assert.NilError(t, err)
	return img
}

func digestOf(t *testing.T, a Artifact) string {
	t.Helper()
	h, err := a.Digest()
	assert.NilError(t, err)
	return h.String()
}

func remoteDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	assert.NilError(t, err)
	d, err := remote.Head(r)
	assert.NilError(t, err)
	return d.Digest.String()
}

func newDiscardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	assert.NilError(t, err)
	return r
}

func TestRunFailedPushLeavesNoReport(t *testing.T) {
	reg := newTestRegistry(t, nil)
	tag := reg.ref("app:1")
	reg.srv.Close()

	opts := testOptions(t, seededImage(t, 6, 512, 1), tag)
	assert.NilError(t, os.WriteFile(opts.ReportPath, []byte("[image]\ntags = [\"old/app:1\"]\ndigest = \"sha256:"+strings.Repeat("a", 64)+"\"\n"), 0o644))

	_, err := Run(context.Background(), opts)
	assert.ErrorContains(t, err, "push "+tag)
	assert.Assert(t, !errors.Is(err, badinput.Err))
	assert.Assert(t, !fileExists(opts.ReportPath), "the stale report must be removed")
}

func TestRunBadInputTouchesNothing(t *testing.T) {
	reg := newTestRegistry(t, nil)
	img := seededImage(t, 8, 512, 1)
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	assert.NilError(t, os.WriteFile(aFile, nil, 0o644))
	notLayout := filepath.Join(dir, "notlayout")
	assert.NilError(t, os.MkdirAll(filepath.Join(notLayout, "x"), 0o755))

	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"no tags", func(o *Options) { o.Tags = nil }, "no destination IMAGE"},
		{"bad reference", func(o *Options) { o.Tags = append(o.Tags, reg.ref("UPPER/app:1")) }, "UPPER/app:1"},
		{"digest destination", func(o *Options) { o.Tags = []string{reg.ref("app@sha256:" + strings.Repeat("a", 64))} }, "not a digest"},
		{"same tag twice", func(o *Options) { o.Tags = append(o.Tags, reg.ref("app:1")) }, "same tag"},
		{"jobs zero", func(o *Options) { o.Jobs = 0 }, "-jobs must be at least 1, got 0"},
		{"jobs negative", func(o *Options) { o.Jobs = -2 }, "-jobs"},
		{"insecure with scheme", func(o *Options) { o.Insecure = []string{"http://" + reg.host} }, "-insecure-registry"},
		{"insecure empty", func(o *Options) { o.Insecure = []string{""} }, "-insecure-registry"},
		{"schema", func(o *Options) { o.ReportSchema = "lifecycle" }, "-report-schema"},
		{"report under a file", func(o *Options) { o.ReportPath = filepath.Join(aFile, "sub", "report.toml") }, "is not a directory"},
		{"report is a directory", func(o *Options) { o.ReportPath = dir }, "is a directory"},
		{"oci-layout is a file", func(o *Options) { o.OCILayout = aFile }, "-oci-layout"},
		{"oci-layout not a layout", func(o *Options) { o.OCILayout = notLayout }, "neither empty nor an OCI image layout"},
		{"no source", func(o *Options) { o.Artifact = nil }, "-source is required"},
		{"source and artifact", func(o *Options) { o.Source = "oci:" + dir }, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.reset()
			opts := testOptions(t, img, reg.ref("app:1"))
			stale := opts.ReportPath
			assert.NilError(t, os.WriteFile(stale, []byte("stale"), 0o644))
			tc.modify(&opts)

			_, err := Run(context.Background(), opts)
			assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
			assert.ErrorContains(t, err, tc.want)
			assert.Equal(t, len(reg.requests()), 0, "requests: %v", reg.requests())
			// Nothing is written, or even removed, on bad input.
			got, err := os.ReadFile(stale)
			assert.NilError(t, err)
			assert.Equal(t, string(got), "stale")
		})
	}
}

func TestRunReportGolden(t *testing.T) {
	// A fixed image, a fixed host name in the golden file.
	img := seededImage(t, 42, 256, 1)
	for _, schema := range []report.Schema{report.SchemaRFC, report.SchemaPlatform} {
		t.Run(string(schema), func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			opts := testOptions(t, img, reg.ref("team/app:latest"), reg.ref("team/app:1.4.2"))
			opts.ReportSchema = schema
			_, err := Run(context.Background(), opts)
			assert.NilError(t, err)
			got, err := os.ReadFile(opts.ReportPath)
			assert.NilError(t, err)
			golden.Assert(t, strings.ReplaceAll(string(got), reg.host, "registry.example.com"), "report-"+string(schema)+".toml")
		})
	}
}

func TestRunReportWriteFailureSaysPushed(t *testing.T) {
	img := seededImage(t, 9, 256, 1)
	opts := testOptions(t, img)
	dir := filepath.Dir(opts.ReportPath)
	// The report directory exists when the inputs are checked, and is
	// replaced by a file mid-run (by the registry, while it takes the
	// manifest), so the report cannot be written after a good push.
	reg2 := newTestRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				_ = os.RemoveAll(dir)
				_ = os.WriteFile(dir, nil, 0o644)
			}
			next.ServeHTTP(w, r)
		})
	})
	opts.Tags = []string{reg2.ref("app:1")}
	_, err := Run(context.Background(), opts)
	assert.ErrorContains(t, err, "image WAS pushed as "+reg2.ref("app:1")+"@"+digestOf(t, img))
	assert.ErrorContains(t, err, "report could not be written")
	assert.Assert(t, !errors.Is(err, badinput.Err))
	assert.Assert(t, !errors.Is(err, report.ErrInvalid))
}
