package integration

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/exportreport/exportreport/test/distribution"
)

const commandTimeout = 5 * time.Minute

// run runs a built command with a clean environment: HOME and DOCKER_CONFIG
// point at empty directories (so no developer credentials leak in), and
// CNB_REPORT_PATH and SSL_CERT_FILE are unset unless env sets them.
// env entries are KEY=VALUE and override the defaults.
func run(t *testing.T, command string, dir string, env []string, args ...string) *icmd.Result {
	t.Helper()
	cmd := icmd.Command(binary(t, command), args...)
	cmd.Env = cleanEnv(t, env)
	cmd.Dir = dir
	cmd.Timeout = commandTimeout
	res := icmd.RunCmd(cmd)
	if res.Error != nil && res.ExitCode == 0 || res.Timeout {
		t.Fatalf("%s: %v", command, res.Error)
	}
	t.Logf("%s %s\n  exit %d\n  stdout: %q\n  stderr: %s", command, strings.Join(args, " "),
		res.ExitCode, res.Stdout(), indent(res.Stderr()))
	return res
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n          ")
}

func cleanEnv(t *testing.T, overrides []string) []string {
	t.Helper()
	drop := map[string]bool{"HOME": true, "DOCKER_CONFIG": true, "CNB_REPORT_PATH": true,
		"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "SOURCE_DATE_EPOCH": true}
	var env []string
	for _, kv := range os.Environ() {
		if !drop[strings.SplitN(kv, "=", 2)[0]] {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
	return append(env, overrides...) // later entries win in os/exec
}

// assertExit checks the exit code, printing stderr on a mismatch.
func assertExit(t *testing.T, res *icmd.Result, code int) {
	t.Helper()
	assert.Equal(t, res.ExitCode, code, "stderr: %s", res.Stderr())
}

// report is report.toml as DESIGN.md specifies it (RFC schema), decoded
// independently of pkg/report.
type report struct {
	Image struct {
		Tags         []string `toml:"tags"`
		Digest       string   `toml:"digest"`
		ImageID      string   `toml:"image_id"`
		ManifestSize int64    `toml:"manifest_size"`
		MediaType    string   `toml:"media_type"`
	} `toml:"image"`
}

// readReport decodes path strictly: every key must be one the RFC schema has.
func readReport(t *testing.T, path string) report {
	t.Helper()
	var r report
	md, err := toml.DecodeFile(path, &r)
	assert.NilError(t, err)
	assert.Check(t, is.Len(md.Undecoded(), 0), "keys outside the schema in %s", path)
	return r
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	_, err := os.Stat(path)
	assert.Assert(t, errors.Is(err, fs.ErrNotExist), "%s exists (stat: %v)", path, err)
}

// assertEmptyDir checks that dir holds nothing.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Check(t, is.Len(names, 0), "files written to %s: %v", dir, names)
}

// newImage builds a small image with OCI media types: two layers whose
// content depends on seed, a config for the platform with a Cmd.
func newImage(t *testing.T, seed string, platform v1.Platform) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, file := range []string{"etc/" + seed + ".conf", "app/" + seed} {
		data := tarFile(t, file, strings.Repeat(seed+" layer "+string(rune('a'+i))+"\n", 50))
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		assert.NilError(t, err)
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "test " + file}})
		assert.NilError(t, err)
	}
	cfg, err := img.ConfigFile()
	assert.NilError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = platform.OS, platform.Architecture, platform.Variant
	cfg.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	cfg.Config.Cmd = []string{"/app/" + seed}
	img, err = mutate.ConfigFile(img, cfg)
	assert.NilError(t, err)
	return img
}

func tarFile(t *testing.T, path, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0).UTC()
	dir := filepath.Dir(path)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mod}))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: 0o644, Size: int64(len(content)), ModTime: mod}))
	_, err := tw.Write([]byte(content))
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// newIndex builds an OCI index of two images, linux/amd64 and linux/arm64.
func newIndex(t *testing.T, seed string) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	images := map[string]v1.Image{}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{amd64, arm64} {
		img := newImage(t, seed+"-"+p.Architecture, p)
		images[p.Architecture] = img
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, images
}

// writeLayout writes an OCI image layout at a new directory holding one
// image or index, tagged "latest", and returns the directory.
func writeLayout(t *testing.T, artifact any) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "source-layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	tag := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})
	switch a := artifact.(type) {
	case v1.Image:
		assert.NilError(t, p.AppendImage(a, tag))
	case v1.ImageIndex:
		assert.NilError(t, p.AppendIndex(a, tag))
	default:
		t.Fatalf("writeLayout: %T is neither an image nor an index", artifact)
	}
	return dir
}

type describable interface {
	Digest() (v1.Hash, error)
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

// descriptorOf is what a registry should serve for a pushed artifact.
func descriptorOf(t *testing.T, a describable) v1.Descriptor {
	t.Helper()
	d, err := a.Digest()
	assert.NilError(t, err)
	raw, err := a.RawManifest()
	assert.NilError(t, err)
	mt, err := a.MediaType()
	assert.NilError(t, err)
	return v1.Descriptor{Digest: d, Size: int64(len(raw)), MediaType: mt}
}

// assertReportDescribes checks a registry report against the artifact
// expected, and that tags are exactly those given.
func assertReportDescribes(t *testing.T, r report, tags []string, want v1.Descriptor) {
	t.Helper()
	assert.DeepEqual(t, r.Image.Tags, tags)
	assert.Equal(t, r.Image.Digest, want.Digest.String())
	assert.Equal(t, r.Image.ManifestSize, want.Size)
	assert.Equal(t, r.Image.MediaType, string(want.MediaType))
	assert.Equal(t, r.Image.ImageID, "", "a registry export has no image_id")
}

// assertServed checks, for each tag, that the registry serves the manifest
// the report describes: with go-containerregistry remote.Head and with
// skopeo inspect --raw (its sha256, size and mediaType).
func assertServed(t *testing.T, reg *distribution.Registry, r report, skopeoArgs ...string) {
	t.Helper()
	skopeo := distribution.RequireTool(t, "skopeo")
	for _, tag := range r.Image.Tags {
		ref, err := name.ParseReference(tag)
		assert.NilError(t, err)
		desc, err := remote.Head(ref, reg.RemoteOptions()...)
		assert.NilError(t, err, "HEAD %s", tag)
		assert.Check(t, is.Equal(desc.Digest.String(), r.Image.Digest), "remote.Head %s", tag)
		assert.Check(t, is.Equal(desc.Size, r.Image.ManifestSize), "remote.Head %s", tag)
		assert.Check(t, is.Equal(string(desc.MediaType), r.Image.MediaType), "remote.Head %s", tag)
		assertBlobsServed(t, reg, ref)

		args := append([]string{"inspect", "--raw"}, skopeoArgs...)
		if len(skopeoArgs) == 0 {
			args = append(args, "--tls-verify=false")
		}
		res := icmd.RunCmd(icmd.Command(skopeo, append(args, "docker://"+tag)...), icmd.WithTimeout(time.Minute))
		res.Assert(t, icmd.Success)
		raw := []byte(res.Stdout())
		assert.Check(t, is.Equal(sha256Digest(raw), r.Image.Digest), "skopeo inspect --raw %s", tag)
		assert.Check(t, is.Equal(int64(len(raw)), r.Image.ManifestSize), "skopeo inspect --raw %s", tag)
		assert.Check(t, is.Equal(manifestMediaType(t, raw), r.Image.MediaType), "skopeo inspect --raw %s", tag)
	}
}

// assertBlobsServed reads every blob the manifest (or index) at ref names:
// the children of an index, the config and every layer, each verified
// against its digest.
func assertBlobsServed(t *testing.T, reg *distribution.Registry, ref name.Reference) {
	t.Helper()
	got, err := remote.Get(ref, reg.RemoteOptions()...)
	assert.NilError(t, err, "GET %s", ref)
	if got.MediaType.IsIndex() {
		idx, err := got.ImageIndex()
		assert.NilError(t, err)
		manifest, err := idx.IndexManifest()
		assert.NilError(t, err)
		for _, child := range manifest.Manifests {
			assertBlobsServed(t, reg, ref.Context().Digest(child.Digest.String()))
		}
		return
	}
	img, err := got.Image()
	assert.NilError(t, err)
	_, err = img.RawConfigFile()
	assert.NilError(t, err, "config of %s", ref)
	layers, err := img.Layers()
	assert.NilError(t, err)
	for _, l := range layers {
		d, err := l.Digest()
		assert.NilError(t, err)
		rc, err := l.Compressed()
		assert.NilError(t, err, "layer %s of %s", d, ref)
		_, err = io.Copy(io.Discard, rc)
		assert.NilError(t, err, "layer %s of %s", d, ref)
		assert.NilError(t, rc.Close(), "layer %s of %s", d, ref)
	}
}

func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func manifestMediaType(t *testing.T, raw []byte) string {
	t.Helper()
	var m struct {
		MediaType string `json:"mediaType"`
	}
	assert.NilError(t, json.Unmarshal(raw, &m))
	return m.MediaType
}

// stdoutLine is export-step's stdout: one value (the digest, or with
// -daemon the image ID) alone on its line.
func stdoutLine(t *testing.T, res *icmd.Result) string {
	t.Helper()
	out := res.Stdout()
	assert.Check(t, is.Equal(strings.Count(strings.TrimSuffix(out, "\n"), "\n"), 0), "stdout has more than the digest: %q", out)
	return strings.TrimSpace(out)
}

// runTool runs a tool (docker, skopeo, umoci) that must succeed and returns
// its trimmed stdout.
func runTool(t *testing.T, tool string, args ...string) string {
	t.Helper()
	res := icmd.RunCmd(icmd.Command(tool, args...), icmd.WithTimeout(2*time.Minute))
	res.Assert(t, icmd.Success)
	return strings.TrimSpace(res.Stdout())
}

// uniqueTag is a tag no other run uses, for shared state like the daemon.
func uniqueTag() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "t" + hex.EncodeToString(b[:])
}
