package layout_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/test/distribution"
)

const fixedDigest = "sha256:4c1d2f5e8a9b0c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"

func TestTagOf(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"registry.example.com/team/app:latest", "latest"},
		{"registry.example.com:5000/team/app:1.4.2", "1.4.2"},
		{"registry.example.com:5000/team/app", ""},
		{"localhost:5000/app", ""},
		{"app:v1", "v1"},
		{"registry.example.com/app:v1@" + fixedDigest, "v1"},
		{"registry.example.com:5000/app@" + fixedDigest, ""},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			assert.Equal(t, layout.TagOf(tc.ref), tc.want)
		})
	}
}

func fixedDescriptor(t *testing.T) v1.Descriptor {
	h, err := v1.NewHash(fixedDigest)
	assert.NilError(t, err)
	return v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: 1234}
}

func TestIndexGolden(t *testing.T) {
	tags := []string{
		"registry.example.com/team/app:latest",
		"registry.example.com/team/app:1.4.2",
		"registry.example.com/team/app:1.4.2", // repeated: listed once
		"mirror.example.com:5000/app@" + fixedDigest,
	}
	idx, err := layout.Index(tags, fixedDescriptor(t))
	assert.NilError(t, err)
	raw, err := idx.RawManifest()
	assert.NilError(t, err)
	golden.Assert(t, string(raw), "index.json.golden")

	m, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Equal(t, m.MediaType, types.OCIImageIndex)
	assert.Equal(t, len(m.Manifests), 3)
	for _, d := range m.Manifests {
		assert.Equal(t, d.Digest.String(), fixedDigest)
		assert.Equal(t, d.Size, int64(1234))
		assert.Equal(t, d.MediaType, types.OCIImageIndex)
	}
	assert.DeepEqual(t, m.Manifests[0].Annotations, map[string]string{
		layout.AnnotationRefName:   "latest",
		layout.AnnotationImageName: "registry.example.com/team/app:latest",
	})
	// A reference without a tag gets no ref.name.
	assert.DeepEqual(t, m.Manifests[2].Annotations, map[string]string{
		layout.AnnotationImageName: "mirror.example.com:5000/app@" + fixedDigest,
	})
}

func TestIndexRejects(t *testing.T) {
	desc := fixedDescriptor(t)
	noSize := desc
	noSize.Size = 0
	noType := desc
	noType.MediaType = ""
	for _, tc := range []struct {
		name string
		tags []string
		desc v1.Descriptor
		want string
	}{
		{"bad tag", []string{"Not A Reference"}, desc, `tag "Not A Reference"`},
		{"no size", []string{"r.example.com/a:b"}, noSize, "needs media type, size and digest"},
		{"no media type", []string{"r.example.com/a:b"}, noType, "needs media type, size and digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := layout.Index(tc.tags, tc.desc)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// countingRegistry is go-containerregistry's in-process registry behind a
// handler that counts requests.
type countingRegistry struct {
	host string
	mu   sync.Mutex
	all  int
	head map[string]int // HEAD /v2/.../manifests/... by path
}

func (c *countingRegistry) heads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.head {
		n += v
	}
	return n
}

func (c *countingRegistry) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

func startRegistry(t *testing.T, tlsServer bool) *countingRegistry {
	t.Helper()
	c := &countingRegistry{head: map[string]int{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.all++
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			c.head[r.URL.Path]++
		}
		c.mu.Unlock()
		reg.ServeHTTP(w, r)
	})
	var s *httptest.Server
	if tlsServer {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	c.host = strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
	return c
}

// push writes img to every ref and resets the request counts.
func (c *countingRegistry) push(t *testing.T, img v1.Image, refs ...string) {
	t.Helper()
	for _, r := range refs {
		ref, err := name.ParseReference(r)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(ref, img))
	}
	c.mu.Lock()
	c.all, c.head = 0, map[string]int{}
	c.mu.Unlock()
}

// randomImage is a random image with OCI media types (skopeo 1.9 finds only
// OCI manifests in an OCI layout's index.json).
func randomImage(t *testing.T) (v1.Image, v1.Descriptor) {
	t.Helper()
	img, err := random.Image(512, 2)
	assert.NilError(t, err)
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	d, err := partial.Descriptor(img)
	assert.NilError(t, err)
	return img, *d
}

func TestDescribe(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no host credentials
	reg := startRegistry(t, false)
	img, want := randomImage(t)
	tags := []string{reg.host + "/team/app:latest", reg.host + "/team/app:1.4.2", reg.host + "/other/app:v1"}
	reg.push(t, img, tags...)
	other, _ := randomImage(t)
	otherDigest, err := other.Digest()
	assert.NilError(t, err)

	for _, tc := range []struct {
		name      string
		image     report.Image
		opts      []layout.Option
		wantErr   string
		wantIs    error
		wantHeads int
		wantAny   bool // any request at all
	}{
		{
			name:  "our report: nothing asked",
			image: report.Image{Tags: tags, Digest: want.Digest.String(), ManifestSize: want.Size, MediaType: string(want.MediaType)},
		},
		{
			name:      "lifecycle report: one HEAD for three tags",
			image:     report.Image{Tags: tags, Digest: want.Digest.String(), ManifestSize: want.Size},
			wantHeads: 1, wantAny: true,
		},
		{
			name:      "no size either: one HEAD",
			image:     report.Image{Tags: tags, Digest: want.Digest.String()},
			wantHeads: 1, wantAny: true,
		},
		{
			name:    "offline and needed",
			image:   report.Image{Tags: tags, Digest: want.Digest.String(), ManifestSize: want.Size},
			opts:    []layout.Option{layout.WithOffline(true)},
			wantErr: "-offline forbids asking the registry", wantIs: layout.ErrNeedRegistry,
		},
		{
			name:  "offline and not needed",
			image: report.Image{Tags: tags, Digest: want.Digest.String(), ManifestSize: want.Size, MediaType: string(want.MediaType)},
			opts:  []layout.Option{layout.WithOffline(true)},
		},
		{
			name:      "digest not in the registry",
			image:     report.Image{Tags: tags, Digest: otherDigest.String()},
			wantErr:   "HEAD " + reg.host + "/team/app@" + otherDigest.String(),
			wantHeads: 1, wantAny: true,
		},
		{
			name:      "registry size differs from the report's",
			image:     report.Image{Tags: tags, Digest: want.Digest.String(), ManifestSize: want.Size + 1},
			wantErr:   "the report says",
			wantHeads: 1, wantAny: true,
		},
		{
			name:    "daemon report",
			image:   report.Image{Tags: tags, ImageID: fixedDigest},
			wantErr: "no registry digest",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.push(t, img) // reset counts
			got, err := layout.Describe(context.Background(), &report.Report{Image: tc.image}, tc.opts...)
			assert.Equal(t, reg.heads(), tc.wantHeads)
			if !tc.wantAny {
				assert.Equal(t, reg.requests(), 0)
			}
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				if tc.wantIs != nil {
					assert.Assert(t, errors.Is(err, tc.wantIs))
				}
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, v1.Descriptor{MediaType: want.MediaType, Digest: want.Digest, Size: want.Size})
		})
	}
}

func TestDescribeInsecureRegistry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := startRegistry(t, true) // self-signed certificate
	img, want := randomImage(t)
	tag := reg.host + "/team/app:latest"
	ref, err := name.ParseReference(tag)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(ref, img, remote.WithTransport(&http.Transport{TLSClientConfig: insecureTLS()})))
	elsewhere := startRegistry(t, true)

	r := &report.Report{Image: report.Image{Tags: []string{tag}, Digest: want.Digest.String()}}

	// Without -insecure-registry the certificate is checked, and fails.
	reg.push(t, img)
	_, err = layout.Describe(context.Background(), r)
	assert.ErrorContains(t, err, "HEAD "+reg.host)
	assert.Equal(t, reg.heads(), 0)

	// Insecure for another host: still checked.
	_, err = layout.Describe(context.Background(), r, layout.WithInsecureRegistries(elsewhere.host))
	assert.ErrorContains(t, err, "HEAD "+reg.host)

	got, err := layout.Describe(context.Background(), r, layout.WithInsecureRegistries(reg.host))
	assert.NilError(t, err)
	assert.Equal(t, got.Size, want.Size)
	assert.Equal(t, reg.heads(), 1)

	// The one -insecure-registry rule (pkg/insecureregistry, as export-step
	// applies it): a host listed without a port covers every port of it.
	hostOnly, _, err := net.SplitHostPort(reg.host)
	assert.NilError(t, err)
	reg.push(t, img)
	got, err = layout.Describe(context.Background(), r, layout.WithInsecureRegistries(hostOnly))
	assert.NilError(t, err)
	assert.Equal(t, got.Size, want.Size)
	assert.Equal(t, reg.heads(), 1)
}

// TestDescribeDistribution asks the real Distribution registry, with TLS and
// basic auth, the credentials coming from DOCKER_CONFIG.
func TestDescribeDistribution(t *testing.T) {
	reg := distribution.Start(t, distribution.WithTLS(), distribution.WithBasicAuth("builder", "s3cret"))
	img, want := randomImage(t)
	tag := reg.Host() + "/team/app:latest"
	ref, err := name.ParseReference(tag)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(ref, img, reg.RemoteOptions()...))
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t))
	t.Setenv("SSL_CERT_FILE", reg.CAFile)

	r := &report.Report{Image: report.Image{Tags: []string{tag}, Digest: want.Digest.String()}}
	got, err := layout.Describe(context.Background(), r, layout.WithTransport(reg.Transport()), layout.WithKeychain(authn.DefaultKeychain))
	assert.NilError(t, err)
	assert.DeepEqual(t, got, v1.Descriptor{MediaType: want.MediaType, Digest: want.Digest, Size: want.Size})

	// Wrong credentials: the error says so.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err = layout.Describe(context.Background(), r, layout.WithTransport(reg.Transport()))
	assert.ErrorContains(t, err, "HEAD "+reg.Host())
}

func TestWriteKeepsBlobsAndToolsAgree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	img, desc := randomImage(t)
	// What export-step -oci-layout leaves: the image's blobs and an
	// index.json of its own.
	_, err := ggcrlayout.Write(dir, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img}))
	assert.NilError(t, err)
	blobsBefore := listBlobs(t, dir)
	assert.Assert(t, len(blobsBefore) >= 4) // manifest, config, 2 layers

	tags := []string{"registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2"}
	idx, err := layout.Index(tags, desc)
	assert.NilError(t, err)
	raw, err := layout.Merge(dir, idx)
	assert.NilError(t, err)
	assert.NilError(t, layout.Write(dir, raw))

	assert.DeepEqual(t, listBlobs(t, dir), blobsBefore)
	onDisk, err := os.ReadFile(filepath.Join(dir, "index.json"))
	assert.NilError(t, err)
	assert.Equal(t, string(onDisk), string(raw))
	layoutFile, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	assert.NilError(t, err)
	assert.Equal(t, string(layoutFile), `{"imageLayoutVersion":"1.0.0"}`)
	for _, f := range []string{"index.json", "oci-layout"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		assert.NilError(t, err)
		assert.Equal(t, fi.Mode().Perm(), os.FileMode(0o644))
	}
	assertNoTempFiles(t, dir)

	// go-containerregistry reads the image back through the new index.
	p, err := ggcrlayout.FromPath(dir)
	assert.NilError(t, err)
	back, err := p.Image(desc.Digest)
	assert.NilError(t, err)
	backDigest, err := back.Digest()
	assert.NilError(t, err)
	assert.Equal(t, backDigest, desc.Digest)

	umoci := distribution.RequireTool(t, "umoci")
	out, err := exec.Command(umoci, "ls", "--layout", dir).CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.DeepEqual(t, sortedLines(string(out)), []string{"1.4.2", "latest"})

	skopeo := distribution.RequireTool(t, "skopeo")
	for _, tag := range []string{"latest", "1.4.2"} {
		out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":"+tag).Output()
		assert.NilError(t, err, "skopeo inspect oci:%s:%s: %s", dir, tag, stderrOf(err))
		sum := sha256.Sum256(out)
		assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), desc.Digest.String())
		assert.Equal(t, int64(len(out)), desc.Size)
		var m struct {
			MediaType string `json:"mediaType"`
		}
		assert.NilError(t, json.Unmarshal(out, &m))
		assert.Equal(t, m.MediaType, string(desc.MediaType))
	}
}

// TestWriteDescriptorsOnly: a registry export leaves no blobs; the layout
// still lists the tags.
func TestWriteDescriptorsOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "layout")
	mergeAndWrite(t, dir, []string{"registry.example.com/team/app:latest"}, fixedDescriptor(t))
	// Writing again merges: the first tag stays.
	mergeAndWrite(t, dir, []string{"registry.example.com/team/app:v2"}, fixedDescriptor(t))
	assertNoTempFiles(t, dir)

	umoci := distribution.RequireTool(t, "umoci")
	out, err := exec.Command(umoci, "ls", "--layout", dir).CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.DeepEqual(t, sortedLines(string(out)), []string{"latest", "v2"})
}

func mergeAndWrite(t *testing.T, dir string, tags []string, desc v1.Descriptor) {
	t.Helper()
	idx, err := layout.Index(tags, desc)
	assert.NilError(t, err)
	raw, err := layout.Merge(dir, idx)
	assert.NilError(t, err)
	assert.NilError(t, layout.Write(dir, raw))
}

// TestMergeNames is Merge's rule for which existing descriptors name one
// of the new references (and are replaced); every other one is kept.
func TestMergeNames(t *testing.T) {
	ours := []string{"registry.example.com/team/app:latest", "app:1.0", "mirror.example.com:5000/app@" + fixedDigest}
	for _, tc := range []struct {
		name        string
		annotations string
		replaced    bool
	}{
		{"no annotations", ``, false},
		{"containerd name, same", `"io.containerd.image.name":"registry.example.com/team/app:latest"`, true},
		{"containerd name, Docker Hub spelled in full", `"io.containerd.image.name":"docker.io/library/app:1.0"`, true},
		{"containerd name, other repository", `"io.containerd.image.name":"registry.example.com/other/app:latest"`, false},
		{"containerd name, other tag", `"io.containerd.image.name":"registry.example.com/team/app:2.0"`, false},
		{"containerd name by digest", `"io.containerd.image.name":"mirror.example.com:5000/app@` + fixedDigest + `"`, true},
		{"full ref.name, same", `"org.opencontainers.image.ref.name":"registry.example.com/team/app:latest"`, true},
		{"full ref.name without tag is :latest", `"org.opencontainers.image.ref.name":"registry.example.com/team/app"`, true},
		{"full ref.name, other registry", `"org.opencontainers.image.ref.name":"other.example.com/team/app:latest"`, false},
		{"bare ref.name of one of our tags", `"org.opencontainers.image.ref.name":"latest"`, true},
		{"bare ref.name of another tag", `"org.opencontainers.image.ref.name":"build"`, false},
		{"bare ref.name of ours, but another repository named", `"io.containerd.image.name":"registry.example.com/other/app:1.0","org.opencontainers.image.ref.name":"1.0"`, false},
		{"unparsable name", `"io.containerd.image.name":"Not A Reference"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,"digest":"sha256:` + strings.Repeat("a", 64) + `"`
			if tc.annotations != "" {
				d += `,"annotations":{` + tc.annotations + `}`
			}
			d += `}`
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[`+d+`]}`), 0o644))
			idx, err := layout.Index(ours, fixedDescriptor(t))
			assert.NilError(t, err)
			raw, err := layout.Merge(dir, idx)
			assert.NilError(t, err)
			var m struct{ Manifests []json.RawMessage }
			assert.NilError(t, json.Unmarshal(raw, &m))
			kept := len(m.Manifests) == len(ours)+1
			assert.Check(t, kept != tc.replaced, "replaced %v, want %v: %s", !kept, tc.replaced, raw)
			if kept {
				assert.Equal(t, string(m.Manifests[0]), d, "a kept descriptor is kept byte for byte")
			}
		})
	}
}

// TestMergeRefuses: an existing index.json that is not an OCI image index
// is an error (ErrBadIndex) naming it, never overwritten; one that is a
// symlink is not read (its target is outside the layout) and is replaced.
func TestMergeRefuses(t *testing.T) {
	idx, err := layout.Index([]string{"registry.example.com/team/app:latest"}, fixedDescriptor(t))
	assert.NilError(t, err)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not JSON", `{"manifests":[`, "invalid JSON"},
		{"an array", `[]`, "invalid JSON"},
		{"a descriptor with a bad digest", `{"schemaVersion":2,"manifests":[{"mediaType":"x","size":1,"digest":"sha256:../etc/passwd"}]}`, "descriptor"},
		{"schemaVersion 1", `{"schemaVersion":1,"manifests":[]}`, "schemaVersion 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(tc.content), 0o644))
			_, err := layout.Merge(dir, idx)
			assert.Assert(t, errors.Is(err, layout.ErrBadIndex), "%v", err)
			assert.ErrorContains(t, err, "-oci-layout "+dir+": index.json: ")
			assert.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("a directory", func(t *testing.T) {
		dir := t.TempDir()
		assert.NilError(t, os.Mkdir(filepath.Join(dir, "index.json"), 0o755))
		_, err := layout.Merge(dir, idx)
		assert.Assert(t, errors.Is(err, layout.ErrBadIndex), "%v", err)
	})
	t.Run("a symlink: replaced, not read", func(t *testing.T) {
		dir, outside := t.TempDir(), filepath.Join(t.TempDir(), "index.json")
		assert.NilError(t, os.WriteFile(outside, []byte(`not read`), 0o644))
		assert.NilError(t, os.Symlink(outside, filepath.Join(dir, "index.json")))
		raw, err := layout.Merge(dir, idx)
		assert.NilError(t, err)
		want, err := idx.RawManifest()
		assert.NilError(t, err)
		assert.Equal(t, string(raw), string(want))
	})
	t.Run("too large", func(t *testing.T) {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, "index.json"))
		assert.NilError(t, err)
		assert.NilError(t, f.Truncate(layout.MaxIndexSize+1))
		assert.NilError(t, f.Close())
		_, err = layout.Merge(dir, idx)
		assert.Assert(t, errors.Is(err, layout.ErrBadIndex), "%v", err)
		assert.ErrorContains(t, err, "larger than")
	})
}

func TestWriteFailsOnFileInTheWay(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	idx, err := layout.Index([]string{"registry.example.com/team/app:latest"}, fixedDescriptor(t))
	assert.NilError(t, err)
	raw, err := idx.RawManifest()
	assert.NilError(t, err)
	err = layout.Write(file, raw)
	assert.ErrorContains(t, err, "-oci-layout "+file)
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // test server

func listBlobs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return err
	})
	assert.NilError(t, err)
	sort.Strings(out)
	return out
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	for _, e := range entries {
		assert.Check(t, !strings.Contains(e.Name(), ".tmp-"), "temp file left: %s", e.Name())
	}
	assert.Check(t, is.Len(entries, 3)) // blobs, index.json, oci-layout
}

func sortedLines(s string) []string {
	lines := strings.Fields(s)
	sort.Strings(lines)
	return lines
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// TestFetchManifestsMakesTheLayoutInspectable: a layout written from a
// report alone lists descriptors whose blobs are in the registry, which
// `skopeo inspect oci:DIR:TAG` cannot read; with FetchManifests'
// manifests and configs written into it (-oci-layout-blobs manifest) it
// can, for an image and for an index, and no layer is fetched.
func TestFetchManifestsMakesTheLayoutInspectable(t *testing.T) {
	skopeo := distribution.RequireTool(t, "skopeo")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := startRegistry(t, false)
	img, imgDesc := randomImage(t)
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &amd64}}), types.OCIImageIndex)
	idxDesc, err := partial.Descriptor(idx)
	assert.NilError(t, err)
	cfgDigest, err := img.ConfigName()
	assert.NilError(t, err)

	for _, tc := range []struct {
		name string
		push func(ref name.Reference) error
		desc v1.Descriptor
		want []v1.Hash // blobs fetched
	}{
		{"image", func(ref name.Reference) error { return remote.Write(ref, img) }, imgDesc, []v1.Hash{imgDesc.Digest, cfgDigest}},
		{"index", func(ref name.Reference) error { return remote.WriteIndex(ref, idx) }, *idxDesc, []v1.Hash{idxDesc.Digest, imgDesc.Digest, cfgDigest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag := reg.host + "/team/" + tc.name + ":latest"
			ref, err := name.ParseReference(tag)
			assert.NilError(t, err)
			assert.NilError(t, tc.push(ref))
			// A lifecycle report: no media type.
			r := &report.Report{Image: report.Image{Tags: []string{tag}, Digest: tc.desc.Digest.String(), ManifestSize: tc.desc.Size}}
			dir := filepath.Join(t.TempDir(), "layout")
			desc, err := layout.Describe(context.Background(), r)
			assert.NilError(t, err)
			mergeAndWrite(t, dir, r.Image.Tags, desc)
			_, err = exec.Command(skopeo, "inspect", "oci:"+dir+":latest").Output()
			assert.Assert(t, err != nil, "skopeo inspects a layout without blobs")

			_, err = layout.FetchManifests(context.Background(), r, layout.WithOffline(true))
			assert.Assert(t, errors.Is(err, layout.ErrNeedBlobs), "%v", err)
			blobs, err := layout.FetchManifests(context.Background(), r)
			assert.NilError(t, err)
			var got []v1.Hash
			for d := range blobs {
				got = append(got, d)
			}
			assert.Assert(t, is.Len(got, len(tc.want)))
			for _, d := range tc.want {
				assert.Check(t, blobs[d] != nil, "blob %s not fetched", d)
			}
			assert.NilError(t, layout.WriteBlobs(dir, blobs, false))
			out, err := exec.Command(skopeo, "inspect", "oci:"+dir+":latest").Output()
			assert.NilError(t, err, "skopeo inspect oci:%s:latest: %s", dir, stderrOf(err))
			var inspected struct{ Digest string }
			assert.NilError(t, json.Unmarshal(out, &inspected))
			// The digest of what the tag names (an index: the index; skopeo
			// read its linux/amd64 image's manifest and config to get here).
			assert.Equal(t, inspected.Digest, tc.desc.Digest.String())
		})
	}

	t.Run("blobs/ a symlink: refused", func(t *testing.T) {
		dir, outside := t.TempDir(), t.TempDir()
		assert.NilError(t, os.Symlink(outside, filepath.Join(dir, "blobs")))
		assert.ErrorContains(t, layout.CheckBlobsDir(dir), "is not a directory")
		assert.ErrorContains(t, layout.WriteBlobs(dir, layout.Blobs{imgDesc.Digest: []byte("x")}, false), "is not a directory")
		entries, err := os.ReadDir(outside)
		assert.NilError(t, err)
		assert.Check(t, is.Len(entries, 0))
	})
}
