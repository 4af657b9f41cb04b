package export

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/export/internal/registry"
	"github.com/exportreport/exportreport/pkg/insecureregistry"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/test/distribution"
)

func TestRunSameRepositoryTagsUploadBlobsOnce(t *testing.T) {
	reg := newTestRegistry(t, nil)
	img := seededImage(t, 1, 2048, 3)
	opts := testOptions(t, img, reg.ref("team/app:1"), reg.ref("team/app:2"), reg.ref("team/app:3"))

	rep, err := Run(context.Background(), opts)
	assert.NilError(t, err)

	// 3 layers + 1 config, each uploaded exactly once, with two requests: a
	// POST and one monolithic PUT. The blobs are small: no HEAD before them.
	assert.Equal(t, reg.count(http.MethodPost, "/v2/team/app/blobs/uploads/"), 4)
	assert.Equal(t, reg.count(http.MethodPatch, "/v2/team/app/blobs/uploads/"), 0)
	assert.Equal(t, reg.count(http.MethodPut, "/v2/team/app/blobs/uploads/"), 4)
	assert.Equal(t, reg.count(http.MethodHead, "/v2/team/app/blobs/"), 0)
	// The primary tag: existence check, then the PUT.
	assert.DeepEqual(t, reg.on("/v2/team/app/manifests/1"), []string{"HEAD", "PUT"})
	// Every other tag costs exactly one manifest PUT, and nothing else.
	assert.DeepEqual(t, reg.on("/v2/team/app/manifests/2"), []string{"PUT"})
	assert.DeepEqual(t, reg.on("/v2/team/app/manifests/3"), []string{"PUT"})

	raw, err := img.RawManifest()
	assert.NilError(t, err)
	want := report.Image{
		Tags:         []string{reg.ref("team/app:1"), reg.ref("team/app:2"), reg.ref("team/app:3")},
		Digest:       digestOf(t, img),
		ManifestSize: int64(len(raw)),
		MediaType:    string(types.DockerManifestSchema2),
	}
	assert.DeepEqual(t, rep.Image, want)
	for _, tag := range want.Tags {
		assert.Equal(t, remoteDigest(t, tag), want.Digest, tag)
	}
	got, err := report.Read(opts.ReportPath)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Image, want)
}

func TestRunTwoRegistriesAndRepositories(t *testing.T) {
	a := newTestRegistry(t, nil)
	b := newTestRegistry(t, nil)
	img := seededImage(t, 2, 1024, 2)
	tags := []string{a.ref("app:1"), b.ref("mirror/app:1"), a.ref("app:2"), a.ref("other:1")}
	opts := testOptions(t, img, tags...)
	opts.Jobs = 1 // bounded parallelism must still finish

	rep, err := Run(context.Background(), opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, rep.Image.Tags, tags)
	assert.DeepEqual(t, a.on("/v2/app/manifests/2"), []string{"PUT"})
	for _, tag := range tags {
		assert.Equal(t, remoteDigest(t, tag), digestOf(t, img), tag)
	}
	// Each registry got its own blobs; b's were not skipped.
	assert.Equal(t, b.count(http.MethodPut, "/v2/mirror/app/blobs/uploads/"), 3)
	assert.Equal(t, a.count(http.MethodPut, "/v2/app/blobs/uploads/"), 3)
	// a/other is pushed after a/app, each blob offered for mounting from
	// a/app in the POST that starts its upload (this registry does not
	// mount, so it opens an upload instead; Distribution mounts:
	// TestPushMountsAcrossRepositoriesOnDistribution), and no blob HEAD.
	offers := 0
	for _, q := range a.requests() {
		if q.Method == http.MethodPost && q.Path == "/v2/other/blobs/uploads/" {
			v, err := url.ParseQuery(q.Query)
			assert.NilError(t, err)
			assert.Equal(t, v.Get("from"), "app", q.Query)
			assert.Assert(t, strings.HasPrefix(v.Get("mount"), "sha256:"), q.Query)
			offers++
		}
	}
	assert.Equal(t, offers, 3)
	assert.Equal(t, a.count(http.MethodHead, "/blobs/"), 0)
	assert.Equal(t, a.count(http.MethodPatch, "/v2/other/"), 0)
}

func TestRunIndex(t *testing.T) {
	reg := newTestRegistry(t, nil)
	idx, err := random.Index(1024, 2, 3, random.WithSource(rand.NewSource(3)))
	assert.NilError(t, err)
	opts := testOptions(t, idx, reg.ref("multi:1"), reg.ref("multi:2"))

	rep, err := Run(context.Background(), opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, reg.on("/v2/multi/manifests/2"), []string{"PUT"})

	raw, err := idx.RawManifest()
	assert.NilError(t, err)
	mt, err := idx.MediaType()
	assert.NilError(t, err)
	assert.Equal(t, rep.Image.Digest, digestOf(t, idx))
	assert.Equal(t, rep.Image.ManifestSize, int64(len(raw)))
	assert.Equal(t, rep.Image.MediaType, string(mt))
	assert.Assert(t, types.MediaType(rep.Image.MediaType).IsIndex())

	got, err := remote.Index(mustRef(t, reg.ref("multi:2")))
	assert.NilError(t, err)
	assert.Equal(t, digestOf(t, got), rep.Image.Digest)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Equal(t, len(im.Manifests), 3)
	for _, child := range im.Manifests {
		ref := reg.host + "/multi@" + child.Digest.String()
		img, err := remote.Image(mustRef(t, ref))
		assert.NilError(t, err, ref)
		layers, err := img.Layers()
		assert.NilError(t, err)
		for _, l := range layers {
			d, err := name.NewDigest(reg.host + "/multi@" + mustDigest(t, l))
			assert.NilError(t, err)
			_, err = remote.Layer(d)
			assert.NilError(t, err)
		}
	}
}

func mustDigest(t *testing.T, l v1.Layer) string {
	t.Helper()
	h, err := l.Digest()
	assert.NilError(t, err)
	return h.String()
}

func TestRunReExportSkipsExistingBlobs(t *testing.T) {
	reg := newTestRegistry(t, nil)
	img := seededImage(t, 4, 4096, 3)
	_, err := Run(context.Background(), testOptions(t, img, reg.ref("app:1"), reg.ref("app:2")))
	assert.NilError(t, err)

	t.Run("same image", func(t *testing.T) {
		reg.reset()
		rep, err := Run(context.Background(), testOptions(t, img, reg.ref("app:1"), reg.ref("app:2")))
		assert.NilError(t, err)
		assert.Equal(t, rep.Image.Digest, digestOf(t, img))
		for _, q := range reg.requests() {
			assert.Assert(t, !strings.Contains(q.Path, "/blobs/"), "blob request on re-export: %s", q)
		}
		// Both tags already point at the digest: one HEAD per tag, which
		// also serves as the verification, and nothing else.
		assert.DeepEqual(t, reg.on("/v2/app/manifests/1"), []string{"HEAD"})
		assert.DeepEqual(t, reg.on("/v2/app/manifests/2"), []string{"HEAD"})
	})

	t.Run("new config, same layers", func(t *testing.T) {
		reg.reset()
		img2, err := mutate.Config(img, v1.Config{Labels: map[string]string{"v": "2"}})
		assert.NilError(t, err)
		rep, err := Run(context.Background(), testOptions(t, img2, reg.ref("app:1")))
		assert.NilError(t, err)
		assert.Equal(t, rep.Image.Digest, digestOf(t, img2))
		// Small blobs are sent again rather than checked: a HEAD would
		// cost as much as the upload.
		assert.Equal(t, reg.count(http.MethodPut, "/blobs/uploads/"), 4)
		assert.Equal(t, reg.count(http.MethodHead, "/blobs/sha256:"), 0)
	})

	t.Run("new config, same large layers", func(t *testing.T) {
		big := seededImage(t, 5, registry.HeadThreshold, 2)
		_, err := Run(context.Background(), testOptions(t, big, reg.ref("big:1")))
		assert.NilError(t, err)
		reg.reset()
		big2, err := mutate.Config(big, v1.Config{Labels: map[string]string{"v": "2"}})
		assert.NilError(t, err)
		rep, err := Run(context.Background(), testOptions(t, big2, reg.ref("big:1")))
		assert.NilError(t, err)
		assert.Equal(t, rep.Image.Digest, digestOf(t, big2))
		// Layers of registry.HeadThreshold and more get a HEAD and are not sent
		// again; only the new (small) config is uploaded.
		assert.Equal(t, reg.count(http.MethodHead, "/v2/big/blobs/sha256:"), 2)
		assert.Equal(t, reg.count(http.MethodPut, "/v2/big/blobs/uploads/"), 1)
	})
}

// wrongDigest answers every manifest PUT with a made-up digest.
func wrongDigest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w = &headerRewriter{ResponseWriter: w, set: "sha256:" + strings.Repeat("0", 64)}
		}
		next.ServeHTTP(w, r)
	})
}

// noDigest answers manifest PUTs without a Docker-Content-Digest.
func noDigest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w = &headerRewriter{ResponseWriter: w, del: true}
		}
		next.ServeHTTP(w, r)
	})
}

type headerRewriter struct {
	http.ResponseWriter
	set string
	del bool
}

func (h *headerRewriter) WriteHeader(code int) {
	if h.del {
		h.Header().Del("Docker-Content-Digest")
	} else {
		h.Header().Set("Docker-Content-Digest", h.set)
	}
	h.ResponseWriter.WriteHeader(code)
}

func TestRunVerify(t *testing.T) {
	img := seededImage(t, 5, 512, 1)

	t.Run("mismatch fails and writes no report", func(t *testing.T) {
		reg := newTestRegistry(t, wrongDigest)
		opts := testOptions(t, img, reg.ref("app:v1"))
		_, err := Run(context.Background(), opts)
		assert.ErrorContains(t, err, "digest mismatch")
		assert.ErrorContains(t, err, reg.ref("app:v1"))
		assert.ErrorContains(t, err, "expected "+digestOf(t, img))
		assert.ErrorContains(t, err, "registry returned sha256:000000")
		assert.Assert(t, !errors.Is(err, badinput.Err))
		assert.Assert(t, !fileExists(opts.ReportPath))
	})

	t.Run("no header falls back to one HEAD per tag", func(t *testing.T) {
		reg := newTestRegistry(t, noDigest)
		opts := testOptions(t, img, reg.ref("app:v1"), reg.ref("app:v2"))
		rep, err := Run(context.Background(), opts)
		assert.NilError(t, err)
		assert.Equal(t, rep.Image.Digest, digestOf(t, img))
		assert.DeepEqual(t, reg.on("/v2/app/manifests/v1"), []string{"HEAD", "PUT", "HEAD"})
		assert.DeepEqual(t, reg.on("/v2/app/manifests/v2"), []string{"PUT", "HEAD"})
	})
}

func TestRunRetries(t *testing.T) {
	img := seededImage(t, 7, 512, 1)
	// failFirst answers the first n manifest PUTs with status.
	failFirst := func(n, status int) func(http.Handler) http.Handler {
		var mu sync.Mutex
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
					mu.Lock()
					fail := n > 0
					n--
					mu.Unlock()
					if fail {
						http.Error(w, "flaky", status)
						return
					}
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	for _, tc := range []struct {
		name    string
		status  int
		fails   int
		wantErr string
		puts    int // -1: more than one
	}{
		{name: "503 is retried", status: http.StatusServiceUnavailable, fails: 2, puts: 3},
		{name: "429 is retried", status: http.StatusTooManyRequests, fails: 1, puts: 2},
		{name: "500 gives up after the backoff", status: http.StatusInternalServerError, fails: 1000, puts: -1, wantErr: "500 Internal Server Error"},
		{name: "400 is never retried", status: http.StatusBadRequest, fails: 1000, puts: 1, wantErr: "400 Bad Request"},
		{name: "401 is never retried", status: http.StatusUnauthorized, fails: 1000, puts: 1, wantErr: "401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, failFirst(tc.fails, tc.status))
			opts := testOptions(t, img, reg.ref("app:1"))
			_, err := Run(context.Background(), opts)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, !fileExists(opts.ReportPath))
			} else {
				assert.NilError(t, err)
			}
			if tc.puts < 0 {
				assert.Assert(t, reg.count(http.MethodPut, "/manifests/1") > 1)
			} else {
				assert.Equal(t, reg.count(http.MethodPut, "/manifests/1"), tc.puts)
			}
		})
	}
}

func TestParseTagInsecureOnlyForListedHosts(t *testing.T) {
	set, err := insecureregistry.Parse([]string{"insecure.example"})
	assert.NilError(t, err)
	a, err := parseTag("insecure.example/app:1", set)
	assert.NilError(t, err)
	assert.Equal(t, a.Scheme(), "http")
	b, err := parseTag("secure.example/app:1", set)
	assert.NilError(t, err)
	assert.Equal(t, b.Scheme(), "https")
	c, err := parseTag("app", set)
	assert.NilError(t, err)
	assert.Equal(t, c.Name(), "index.docker.io/library/app:latest")
}

func TestRunInsecureTLSOnlyForListedHost(t *testing.T) {
	trusted := startTestRegistry(t, nil, true)
	untrusted := startTestRegistry(t, nil, true)
	img := seededImage(t, 14, 256, 1)

	opts := testOptions(t, img, trusted.ref("app:1"))
	opts.Insecure = []string{trusted.host}
	_, err := Run(context.Background(), opts)
	assert.NilError(t, err)
	assert.Assert(t, trusted.count(http.MethodPut, "/manifests/1") == 1)

	// Listing one host does not relax TLS for another.
	opts = testOptions(t, img, trusted.ref("app:2"), untrusted.ref("app:1"))
	opts.Insecure = []string{trusted.host}
	_, err = Run(context.Background(), opts)
	assert.ErrorContains(t, err, untrusted.ref("app:1"))
	assert.Equal(t, untrusted.count(http.MethodPut, "/manifests/"), 0)
	assert.Assert(t, !fileExists(opts.ReportPath))
}

// recordingProxy sits in front of a real registry and records every request
// with the status it got.
type recordingProxy struct {
	host string
	mu   sync.Mutex
	reqs []request
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	assert.NilError(t, err)
	p := &recordingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := &statusRecorder{ResponseWriter: w}
		proxy.ServeHTTP(sr, r)
		p.mu.Lock()
		p.reqs = append(p.reqs, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: sr.status})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *recordingProxy) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.reqs...)
}

// On the real Distribution registry, which keeps blobs per repository, the
// second repository of a registry mounts the blobs from the first instead of
// uploading them again; a second registry gets its own uploads.
func TestPushMountsAcrossRepositoriesOnDistribution(t *testing.T) {
	reg := distribution.Start(t)
	proxy := newRecordingProxy(t, reg.URL())
	img := seededImage(t, 30, 64<<10, 3)
	tags := []string{proxy.host + "/first/app:1", proxy.host + "/second/app:1", proxy.host + "/first/app:2"}

	rep, err := Run(context.Background(), testOptions(t, img, tags...))
	assert.NilError(t, err)
	assert.DeepEqual(t, rep.Image.Tags, tags)

	var firstUploads, mounts, secondPatches int
	for _, q := range proxy.requests() {
		switch {
		case q.Method == http.MethodPut && strings.HasPrefix(q.Path, "/v2/first/app/blobs/uploads/"):
			firstUploads++
		case q.Method == http.MethodPatch && strings.HasPrefix(q.Path, "/v2/second/"):
			secondPatches++
		case q.Method == http.MethodPost && q.Path == "/v2/second/app/blobs/uploads/":
			v, err := url.ParseQuery(q.Query)
			assert.NilError(t, err)
			assert.Equal(t, v.Get("from"), "first/app", q.Query)
			assert.Equal(t, q.Status, http.StatusCreated, "mount of %s", v.Get("mount"))
			mounts++
		}
	}
	assert.Equal(t, firstUploads, 4, "3 layers and the config")
	assert.Equal(t, mounts, 4, "every blob mounted into second/app")
	assert.Equal(t, secondPatches, 0, "nothing uploaded twice")
	for _, tag := range tags {
		ref, err := name.ParseReference(strings.Replace(tag, proxy.host, reg.Host(), 1))
		assert.NilError(t, err)
		d, err := remote.Head(ref, reg.RemoteOptions()...)
		assert.NilError(t, err)
		assert.Equal(t, d.Digest.String(), rep.Image.Digest, tag)
	}
}

// An index to two repositories of the real registry: children and their
// blobs are mounted too.
func TestPushIndexMountsOnDistribution(t *testing.T) {
	reg := distribution.Start(t)
	idx, err := random.Index(1024, 2, 2)
	assert.NilError(t, err)
	tags := []string{reg.Host() + "/idx/a:1", reg.Host() + "/idx/b:1"}
	rep, err := Run(context.Background(), testOptions(t, idx, tags...))
	assert.NilError(t, err)
	assert.Equal(t, rep.Image.Digest, digestOf(t, idx))
	for _, tag := range tags {
		ref, err := name.ParseReference(tag)
		assert.NilError(t, err)
		got, err := remote.Index(ref, reg.RemoteOptions()...)
		assert.NilError(t, err)
		im, err := got.IndexManifest()
		assert.NilError(t, err)
		for _, child := range im.Manifests {
			img, err := remote.Image(ref.Context().Digest(child.Digest.String()), reg.RemoteOptions()...)
			assert.NilError(t, err)
			layers, err := img.Layers()
			assert.NilError(t, err)
			for _, l := range layers {
				h, err := l.Digest()
				assert.NilError(t, err)
				rl, err := remote.Layer(ref.Context().Digest(h.String()), reg.RemoteOptions()...)
				assert.NilError(t, err)
				rc, err := rl.Compressed()
				assert.NilError(t, err, "blob %s in %s", h, ref.Context())
				assert.NilError(t, rc.Close())
			}
		}
	}
}

// Credentials come from the Docker config keychain (DOCKER_CONFIG) and
// never reach the logs, not even at info level.
func TestPushBasicAuthFromDockerConfig(t *testing.T) {
	reg := distribution.Start(t, distribution.WithBasicAuth("exporter", "s3cret-pw"))
	img := seededImage(t, 31, 1024, 1)

	for _, tc := range []struct {
		name    string
		config  string
		wantErr string
	}{
		{name: "credentials", config: reg.DockerConfig(t)},
		{name: "no credentials", config: t.TempDir(), wantErr: "401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tc.config)
			var stderr bytes.Buffer
			opts := testOptions(t, img, reg.Host()+"/secure/app:1")
			opts.Keychain, opts.Quiet, opts.Stderr = nil, false, &stderr // the default keychain
			_, err := Run(context.Background(), opts)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, !fileExists(opts.ReportPath))
			} else {
				assert.NilError(t, err)
				assert.Assert(t, fileExists(opts.ReportPath))
			}
			all := stderr.String()
			if err != nil {
				all += err.Error()
			}
			for _, secret := range []string{"s3cret-pw", reg.Auth(), base64.StdEncoding.EncodeToString([]byte("exporter:s3cret-pw")), "Authorization"} {
				assert.Assert(t, !strings.Contains(all, secret), "%q in the output: %s", secret, all)
			}
		})
	}
}

func TestGroupByRegistry(t *testing.T) {
	var tags []name.Tag
	for _, s := range []string{"a.io/x:1", "b.io/x:1", "a.io/y:1", "a.io/x:2", "b.io/x:2", "x:1", "docker.io/library/x:3"} {
		tg, err := name.NewTag(s)
		assert.NilError(t, err)
		tags = append(tags, tg)
	}
	var got [][]string
	for _, reg := range groupByRegistry(tags) {
		var repos []string
		for _, g := range reg {
			var ts []string
			for _, tg := range g.tags {
				ts = append(ts, tg.TagStr())
			}
			repos = append(repos, g.repo.Name()+"="+strings.Join(ts, ","))
		}
		got = append(got, repos)
	}
	assert.DeepEqual(t, got, [][]string{
		{"a.io/x=1,2", "a.io/y=1"},
		{"b.io/x=1,2"},
		{"index.docker.io/library/x=1,3"},
	})
}

func TestRunCreatesReportDirectory(t *testing.T) {
	reg := newTestRegistry(t, nil)
	opts := testOptions(t, seededImage(t, 32, 256, 1), reg.ref("app:1"))
	opts.ReportPath = filepath.Join(t.TempDir(), "new", "dir", "report.toml")
	_, err := Run(context.Background(), opts)
	assert.NilError(t, err)
	_, err = os.Stat(opts.ReportPath)
	assert.NilError(t, err)
}
