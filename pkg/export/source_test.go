package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/test/distribution"
)

const srcTestDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// srcImage is a small random image with the given platform in its
// config ("" leaves the config without one).
func srcImage(t testing.TB, platform string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 2)
	assert.NilError(t, err)
	if platform == "" {
		return img
	}
	p, err := v1.ParsePlatform(platform)
	assert.NilError(t, err)
	cfg, err := img.ConfigFile()
	assert.NilError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cfg)
	assert.NilError(t, err)
	return img
}

// srcIndex is an index of one image per platform.
func srcIndex(t testing.TB, platforms ...string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, s := range platforms {
		p, err := v1.ParsePlatform(s)
		assert.NilError(t, err)
		adds = append(adds, mutate.IndexAddendum{Add: srcImage(t, s), Descriptor: v1.Descriptor{Platform: p}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

func srcDigest(t testing.TB, a interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := a.Digest()
	assert.NilError(t, err)
	return h
}

func srcWriteFile(t testing.TB, p, content string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
}

func TestParseSource(t *testing.T) {
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	srcWriteFile(t, filepath.Join(lay, "oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)
	weird := filepath.Join(dir, "we:ird")
	srcWriteFile(t, filepath.Join(weird, "oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)
	tarPath := filepath.Join(dir, "img.tar")
	srcWriteFile(t, tarPath, "x")
	colonTar := filepath.Join(dir, "a:b.tar")
	srcWriteFile(t, colonTar, "x")
	plainDir := filepath.Join(dir, "plain")
	assert.NilError(t, os.Mkdir(plainDir, 0o755))
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	assert.NilError(t, err)
	t.Cleanup(func() { ln.Close() })

	tests := []struct {
		in      string
		want    Source
		wantErr string // substring; "" means success
	}{
		// oci:
		{in: "oci:" + lay, want: Source{Transport: TransportOCI, Path: lay}},
		{in: "oci:" + lay + ":v1", want: Source{Transport: TransportOCI, Path: lay, Ref: "v1"}},
		{in: "oci:" + lay + "@" + srcTestDigest, want: Source{Transport: TransportOCI, Path: lay, Ref: srcTestDigest}},
		{in: "oci:" + lay + ":example.com:5000/app:1.0", want: Source{Transport: TransportOCI, Path: lay, Ref: "example.com:5000/app:1.0"}},
		{in: "oci:" + weird, want: Source{Transport: TransportOCI, Path: weird}},
		{in: "oci:" + weird + ":v1", want: Source{Transport: TransportOCI, Path: weird, Ref: "v1"}},
		{in: "oci:" + weird + "@" + srcTestDigest, want: Source{Transport: TransportOCI, Path: weird, Ref: srcTestDigest}},
		{in: "oci:/no/such:dir", want: Source{Transport: TransportOCI, Path: "/no/such", Ref: "dir"}},
		{in: "oci:relative/dir", want: Source{Transport: TransportOCI, Path: "relative/dir"}},
		{in: "oci:", wantErr: `-source "oci:": missing layout directory`},
		{in: "oci:" + lay + ":", wantErr: "empty tag after ':'"},
		{in: "oci:@" + srcTestDigest, wantErr: "missing layout directory before '@'"},
		{in: "oci:" + lay + ":a b", wantErr: "white space"},
		// docker-archive:
		{in: "docker-archive:" + tarPath, want: Source{Transport: TransportDockerArchive, Path: tarPath}},
		{in: "docker-archive:" + tarPath + ":registry.local:5000/app:v1", want: Source{Transport: TransportDockerArchive, Path: tarPath, Ref: "registry.local:5000/app:v1"}},
		{in: "docker-archive:" + colonTar, want: Source{Transport: TransportDockerArchive, Path: colonTar}},
		{in: "docker-archive:" + colonTar + ":app:v1", want: Source{Transport: TransportDockerArchive, Path: colonTar, Ref: "app:v1"}},
		{in: "docker-archive:/no/such.tar:app", want: Source{Transport: TransportDockerArchive, Path: "/no/such.tar", Ref: "app"}},
		{in: "docker-archive:/no/such:Bad Name.tar", want: Source{Transport: TransportDockerArchive, Path: "/no/such:Bad Name.tar"}},
		{in: "docker-archive:" + tarPath + ":Bad Ref", wantErr: `invalid image reference "Bad Ref"`},
		{in: "docker-archive:" + tarPath + ":app@" + srcTestDigest, wantErr: "want a tag"},
		{in: "docker-archive:", wantErr: "missing file"},
		// docker-daemon:
		{in: "docker-daemon:app:v1", want: Source{Transport: TransportDaemon, Ref: "app:v1"}},
		{in: "docker-daemon:localhost:5000/app@" + srcTestDigest, want: Source{Transport: TransportDaemon, Ref: "localhost:5000/app@" + srcTestDigest}},
		{in: "docker-daemon:", wantErr: "missing image reference"},
		{in: "docker-daemon:Not/Valid", wantErr: "invalid image reference"},
		// docker://
		{in: "docker://registry.example.com:5000/team/app:1.0", want: Source{Transport: TransportRemote, Ref: "registry.example.com:5000/team/app:1.0"}},
		{in: "docker://alpine", want: Source{Transport: TransportRemote, Ref: "alpine"}},
		{in: "docker://", wantErr: "missing image reference"},
		{in: "docker://UPPER/case", wantErr: "invalid image reference"},
		// plain paths, auto-detected
		{in: lay, want: Source{Transport: TransportOCI, Path: lay}},
		{in: weird, want: Source{Transport: TransportOCI, Path: weird}},
		{in: tarPath, want: Source{Transport: TransportDockerArchive, Path: tarPath}},
		{in: colonTar, want: Source{Transport: TransportDockerArchive, Path: colonTar}},
		{in: plainDir, wantErr: "is not an OCI image layout (no oci-layout file)"},
		{in: sock, wantErr: "is neither a directory nor a regular file"},
		{in: filepath.Join(dir, "missing"), wantErr: filepath.Join(dir, "missing") + " does not exist"},
		// errors
		{in: "foo:bar", wantErr: `-source "foo:bar": unknown transport "foo" (want oci:, docker-archive:, docker-daemon:, docker://)`},
		{in: "https://example.com/x", wantErr: `unknown transport "https"`},
		{in: "docker:alpine", wantErr: "docker://REF"},
		{in: "", wantErr: "-source is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSource(tc.in)
			if tc.wantErr != "" {
				assert.ErrorIs(t, err, badinput.Err)
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Check(t, !strings.Contains(err.Error(), "bad input"), "badinput.Err's own text leaks into %q", err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			// What is parsed formats back to something that parses the same.
			again, err := ParseSource(got.String())
			assert.NilError(t, err)
			assert.DeepEqual(t, again, got)
		})
	}
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"oci:dir", "oci:dir:tag", "oci:dir@" + srcTestDigest, "oci:a:b:c", "oci:x@y", "oci::",
		"docker-archive:f.tar", "docker-archive:f.tar:app:v1", "docker-archive:a:B", "docker-archive::x",
		"docker-daemon:app", "docker://localhost:5000/a/b:c", "docker://a@" + srcTestDigest,
		"foo:bar", "docker:x", "", ":", "source.go", "testdata", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseSource(s)
		if err != nil {
			if !errors.Is(err, badinput.Err) {
				t.Fatalf("ParseSource(%q): error %q does not wrap badinput.Err", s, err)
			}
			return
		}
		switch src.Transport {
		case TransportOCI, TransportDockerArchive:
			if src.Path == "" {
				t.Fatalf("ParseSource(%q) = %+v: no path", s, src)
			}
		case TransportDaemon, TransportRemote:
			if src.Ref == "" || src.Path != "" {
				t.Fatalf("ParseSource(%q) = %+v: want a reference and no path", s, src)
			}
			if _, err := name.ParseReference(src.Ref); err != nil {
				t.Fatalf("ParseSource(%q) accepted an invalid reference: %v", s, err)
			}
		default:
			t.Fatalf("ParseSource(%q) = %+v: unknown transport", s, src)
		}
		again, err := ParseSource(src.String())
		if err != nil {
			t.Fatalf("ParseSource(%q) = %+v, but its String %q does not parse: %v", s, src, src.String(), err)
		}
		if again != src {
			t.Fatalf("ParseSource(%q) = %+v, String %q parses as %+v", s, src, src.String(), again)
		}
	})
}

// ---- OCI layouts ----

// srcLayout writes an OCI layout holding what fill appends.
func srcLayout(t *testing.T, fill func(layout.Path)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	fill(p)
	return dir
}

func TestOpenLayout(t *testing.T) {
	ctx := context.Background()
	a := srcImage(t, "linux/amd64")
	b := srcImage(t, "linux/arm64")
	nested := srcIndex(t, "linux/amd64", "linux/arm64")

	single := srcLayout(t, func(p layout.Path) {
		assert.NilError(t, p.AppendImage(a, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "v1"})))
	})
	multi := srcLayout(t, func(p layout.Path) {
		assert.NilError(t, p.AppendImage(a, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "a"})))
		assert.NilError(t, p.AppendImage(b, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "example.com/app:b"})))
	})
	twice := srcLayout(t, func(p layout.Path) { // one image under two tags
		assert.NilError(t, p.AppendImage(a, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "a"})))
		assert.NilError(t, p.AppendImage(a, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "latest"})))
	})
	withIndex := srcLayout(t, func(p layout.Path) {
		assert.NilError(t, p.AppendIndex(nested))
	})
	multiIndexJSON, err := os.ReadFile(filepath.Join(multi, "index.json"))
	assert.NilError(t, err)
	multiIndexDigest, _, err := v1.SHA256(bytes.NewReader(multiIndexJSON))
	assert.NilError(t, err)

	tests := []struct {
		name string
		src  Source
		want v1.Hash
		kind string // "image" or "index"
	}{
		{"single image", Source{Transport: TransportOCI, Path: single}, srcDigest(t, a), "image"},
		{"single image by tag", Source{Transport: TransportOCI, Path: single, Ref: "v1"}, srcDigest(t, a), "image"},
		{"several: the layout's index", Source{Transport: TransportOCI, Path: multi}, multiIndexDigest, "index"},
		{"several: by tag", Source{Transport: TransportOCI, Path: multi, Ref: "a"}, srcDigest(t, a), "image"},
		{"several: by the tag of a full ref.name", Source{Transport: TransportOCI, Path: multi, Ref: "b"}, srcDigest(t, b), "image"},
		{"several: by full ref.name", Source{Transport: TransportOCI, Path: multi, Ref: "example.com/app:b"}, srcDigest(t, b), "image"},
		{"several: by digest", Source{Transport: TransportOCI, Path: multi, Ref: srcDigest(t, b).String()}, srcDigest(t, b), "image"},
		{"one image tagged twice", Source{Transport: TransportOCI, Path: twice}, srcDigest(t, a), "image"},
		{"nested index", Source{Transport: TransportOCI, Path: withIndex}, srcDigest(t, nested), "index"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(ctx, tc.src)
			assert.NilError(t, err)
			assert.Equal(t, srcDigest(t, got), tc.want)
			switch tc.kind {
			case "image":
				_, ok := got.(v1.Image)
				assert.Check(t, ok, "got %T, want an image", got)
			case "index":
				_, ok := got.(v1.ImageIndex)
				assert.Check(t, ok, "got %T, want an index", got)
			}
		})
	}
}

func TestOpenLayoutErrors(t *testing.T) {
	ctx := context.Background()
	a := srcImage(t, "linux/amd64")
	good := func(t *testing.T) string {
		return srcLayout(t, func(p layout.Path) {
			assert.NilError(t, p.AppendImage(a, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "v1"})))
		})
	}
	blob := func(dir string, h v1.Hash) string { return filepath.Join(dir, "blobs", h.Algorithm, h.Hex) }
	manifest, err := a.Manifest()
	assert.NilError(t, err)

	tests := []struct {
		name    string
		setup   func(t *testing.T) (dir, ref string)
		wantErr string
	}{
		{"missing directory", func(t *testing.T) (string, string) {
			return filepath.Join(t.TempDir(), "nope"), ""
		}, "nope does not exist"},
		{"a file, not a directory", func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "file")
			srcWriteFile(t, p, "x")
			return p, ""
		}, "is not a directory"},
		{"no index.json", func(t *testing.T) (string, string) {
			d := t.TempDir()
			srcWriteFile(t, filepath.Join(d, "oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)
			return d, ""
		}, "index.json does not exist"},
		{"corrupted index.json", func(t *testing.T) (string, string) {
			d := good(t)
			srcWriteFile(t, filepath.Join(d, "index.json"), "{\n  \"schemaVersion\": 2,\n  \"manifests\": [}\n")
			return d, ""
		}, "index.json:3:17: invalid JSON"},
		{"index.json is not an index", func(t *testing.T) (string, string) {
			d := good(t)
			srcWriteFile(t, filepath.Join(d, "index.json"), `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
			return d, ""
		}, "is not an image index"},
		{"digest escaping blobs/", func(t *testing.T) (string, string) {
			d := good(t)
			srcWriteFile(t, filepath.Join(d, "index.json"), `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:../../../etc/passwd"}]}`)
			return d, ""
		}, "invalid JSON"},
		{"bad oci-layout", func(t *testing.T) (string, string) {
			d := good(t)
			srcWriteFile(t, filepath.Join(d, "oci-layout"), `not json`)
			return d, ""
		}, "oci-layout:1:2: invalid JSON"},
		{"no manifests", func(t *testing.T) (string, string) {
			return srcLayout(t, func(layout.Path) {}), ""
		}, "holds no manifests"},
		{"unknown tag", func(t *testing.T) (string, string) { return good(t), "v2" }, `no manifest is tagged "v2" (tags: v1)`},
		{"unknown digest", func(t *testing.T) (string, string) { return good(t), srcTestDigest }, "holds no manifest " + srcTestDigest},
		{"missing manifest blob", func(t *testing.T) (string, string) {
			d := good(t)
			assert.NilError(t, os.Remove(blob(d, srcDigest(t, a))))
			return d, ""
		}, "blob " + srcDigest(t, a).String() + " is missing"},
		{"corrupted manifest blob", func(t *testing.T) (string, string) {
			d := good(t)
			raw, err := a.RawManifest()
			assert.NilError(t, err)
			raw = bytes.Replace(raw, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
			srcWriteFile(t, blob(d, srcDigest(t, a)), string(raw))
			return d, ""
		}, "corrupted blob"},
		{"missing config blob", func(t *testing.T) (string, string) {
			d := good(t)
			assert.NilError(t, os.Remove(blob(d, manifest.Config.Digest)))
			return d, ""
		}, "config: blob " + manifest.Config.Digest.String() + " is missing"},
		{"missing layer blob", func(t *testing.T) (string, string) {
			d := good(t)
			assert.NilError(t, os.Remove(blob(d, manifest.Layers[1].Digest)))
			return d, ""
		}, "layer 1: blob " + manifest.Layers[1].Digest.String() + " is missing"},
		{"truncated layer blob", func(t *testing.T) (string, string) {
			d := good(t)
			srcWriteFile(t, blob(d, manifest.Layers[0].Digest), "short")
			return d, ""
		}, "is 5 bytes, its descriptor says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, ref := tc.setup(t)
			_, err := Open(ctx, Source{Transport: TransportOCI, Path: dir, Ref: ref})
			assert.ErrorIs(t, err, badinput.Err)
			assert.ErrorContains(t, err, tc.wantErr)
			assert.ErrorContains(t, err, dir) // errors name the path
		})
	}
}

// ---- docker-archive ----

// srcWriteTar writes a tar of the given entries (name -> content; a name
// ending in "->target" is a symlink).
func srcWriteTar(t *testing.T, p string, entries [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}
		if n, target, ok := strings.Cut(e[0], "->"); ok {
			h = &tar.Header{Name: n, Linkname: target, Typeflag: tar.TypeSymlink, Mode: 0o777}
		}
		assert.NilError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(e[1]))
			assert.NilError(t, err)
		}
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, os.WriteFile(p, buf.Bytes(), 0o644))
}

func TestOpenArchive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := srcImage(t, "linux/amd64")
	b := srcImage(t, "linux/arm64")
	tagA, err := name.NewTag("registry.local:5000/app:a")
	assert.NilError(t, err)
	tagB, err := name.NewTag("app:b")
	assert.NilError(t, err)

	single := filepath.Join(dir, "single.tar")
	assert.NilError(t, tarball.WriteToFile(single, tagA, a))
	multi := filepath.Join(dir, "multi.tar")
	assert.NilError(t, tarball.MultiWriteToFile(multi, map[name.Tag]v1.Image{tagA: a, tagB: b}))

	t.Run("single image", func(t *testing.T) {
		got, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: single})
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, a))
	})
	t.Run("auto-detected", func(t *testing.T) {
		src, err := ParseSource(single)
		assert.NilError(t, err)
		got, err := Open(ctx, src)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, a))
	})
	t.Run("several, picked by tag", func(t *testing.T) {
		src, err := ParseSource("docker-archive:" + multi + ":app:b")
		assert.NilError(t, err)
		got, err := Open(ctx, src)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, b))
		src, err = ParseSource("docker-archive:" + multi + ":registry.local:5000/app:a")
		assert.NilError(t, err)
		got, err = Open(ctx, src)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, a))
	})

	cfgName := func() string {
		m, err := a.Manifest()
		assert.NilError(t, err)
		return m.Config.Digest.String()
	}()
	tests := []struct {
		name    string
		setup   func(p string)
		ref     string
		wantErr string
	}{
		{"several, no tag", func(p string) {
			assert.NilError(t, tarball.MultiWriteToFile(p, map[name.Tag]v1.Image{tagA: a, tagB: b}))
		}, "", "holds 2 images; pick one with docker-archive:"},
		{"unknown tag", func(p string) {
			assert.NilError(t, tarball.WriteToFile(p, tagA, a))
		}, "app:zzz", "holds no image tagged app:zzz (tags: registry.local:5000/app:a)"},
		{"not a tar", func(p string) {
			srcWriteFile(t, p, strings.Repeat("this is not a tar archive\n", 40))
		}, "", "is not a tar archive"},
		{"empty file", func(p string) { srcWriteFile(t, p, "") }, "", "is not a docker-archive (no manifest.json)"},
		{"tar without manifest.json", func(p string) {
			srcWriteTar(t, p, [][2]string{{"hello.txt", "hi"}})
		}, "", "is not a docker-archive (no manifest.json)"},
		{"gzip-compressed", func(p string) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte("whatever"))
			zw.Close()
			srcWriteFile(t, p, buf.String())
		}, "", "is gzip-compressed"},
		{"entry escaping the archive", func(p string) {
			srcWriteTar(t, p, [][2]string{{"../evil", "x"}, {"manifest.json", "[]"}})
		}, "", `tar entry "../evil" escapes the archive`},
		{"absolute entry", func(p string) {
			srcWriteTar(t, p, [][2]string{{"/etc/evil", "x"}, {"manifest.json", "[]"}})
		}, "", `tar entry "/etc/evil" escapes the archive`},
		{"symlink escaping the archive", func(p string) {
			srcWriteTar(t, p, [][2]string{{"cfg.json->../../etc/passwd"}, {"manifest.json", `[{"Config":"cfg.json","Layers":[]}]`}})
		}, "", `links outside the archive (../../etc/passwd)`},
		{"manifest naming a file outside", func(p string) {
			srcWriteTar(t, p, [][2]string{{"manifest.json", `[{"Config":"../cfg.json","Layers":[]}]`}})
		}, "", `names "../cfg.json", outside the archive`},
		{"manifest naming a missing file", func(p string) {
			srcWriteTar(t, p, [][2]string{{"manifest.json", fmt.Sprintf(`[{"Config":%q,"Layers":["l.tar"]}]`, cfgName)}})
		}, "", "which the archive does not hold"},
		{"manifest.json not JSON", func(p string) {
			srcWriteTar(t, p, [][2]string{{"manifest.json", "[{"}})
		}, "", "manifest.json:1:3: invalid JSON"},
		{"config not JSON", func(p string) {
			srcWriteTar(t, p, [][2]string{{"c.json", "nope"}, {"manifest.json", `[{"Config":"c.json","Layers":[]}]`}})
		}, "", "c.json"},
		{"a directory", func(p string) { assert.NilError(t, os.Mkdir(p, 0o755)) }, "", "is not a regular file"},
		{"missing file", func(string) {}, "", "does not exist"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("case%d.tar", i))
			tc.setup(p)
			_, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: p, Ref: tc.ref})
			assert.ErrorIs(t, err, badinput.Err)
			assert.ErrorContains(t, err, tc.wantErr)
			assert.ErrorContains(t, err, p)
		})
	}
}

// ---- Docker daemon ----

// srcDockerClient connects to the Docker engine, or skips (loudly) when there
// is none and CI is unset.
func srcDockerClient(t *testing.T) *client.Client {
	t.Helper()
	distribution.RequireDockerEngine(t)
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	assert.NilError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srcDockerClient(t)
	img := srcImage(t, "linux/amd64")
	tag, err := name.NewTag(fmt.Sprintf("exportreport-test/source:%d", time.Now().UnixNano()))
	assert.NilError(t, err)
	_, err = daemon.Write(tag, img, daemon.WithClient(c), daemon.WithContext(ctx))
	assert.NilError(t, err)
	t.Cleanup(func() {
		_, err := c.ImageRemove(context.Background(), tag.String(), client.ImageRemoveOptions{Force: true, PruneChildren: true})
		assert.Check(t, err)
	})

	src, err := ParseSource("docker-daemon:" + tag.String())
	assert.NilError(t, err)
	got, err := Open(ctx, src, WithDaemonOptions(daemon.WithClient(c)))
	assert.NilError(t, err)
	gotImg, ok := got.(v1.Image)
	assert.Assert(t, ok, "got %T", got)

	wantCfg, err := img.ConfigFile()
	assert.NilError(t, err)
	gotCfg, err := gotImg.ConfigFile()
	assert.NilError(t, err)
	assert.DeepEqual(t, gotCfg.RootFS.DiffIDs, wantCfg.RootFS.DiffIDs)
	assert.Equal(t, gotCfg.Architecture, "amd64")
	// The image ID the daemon reports is the config digest.
	assert.Equal(t, srcDigest(t, srcConfigNamer{gotImg}), srcDigest(t, srcConfigNamer{img}))
	// Layers stream out of the daemon with the same content.
	layers, err := gotImg.Layers()
	assert.NilError(t, err)
	assert.Assert(t, is.Len(layers, 2))
	diffID, err := layers[1].DiffID()
	assert.NilError(t, err)
	assert.Equal(t, diffID, wantCfg.RootFS.DiffIDs[1])

	t.Run("missing image", func(t *testing.T) {
		_, err := Open(ctx, Source{Transport: TransportDaemon, Ref: "exportreport-test/no-such-image:never"}, WithDaemonOptions(daemon.WithClient(c)))
		assert.ErrorIs(t, err, badinput.Err)
		assert.ErrorContains(t, err, "the Docker daemon has no image")
	})
}

type srcConfigNamer struct{ v1.Image }

func (c srcConfigNamer) Digest() (v1.Hash, error) { return c.ConfigName() }

// ---- registry ----

func TestOpenRemote(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	img := srcImage(t, "linux/amd64")
	idx := srcIndex(t, "linux/amd64", "linux/arm64")
	imgRef, err := name.ParseReference(host+"/team/app:img", name.Insecure)
	assert.NilError(t, err)
	idxRef, err := name.ParseReference(host+"/team/app:idx", name.Insecure)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(imgRef, img))
	assert.NilError(t, remote.WriteIndex(idxRef, idx))

	tests := []struct {
		name string
		ref  string
		want v1.Hash
		kind string
	}{
		{"image by tag", host + "/team/app:img", srcDigest(t, img), "image"},
		{"index by tag", host + "/team/app:idx", srcDigest(t, idx), "index"},
		{"image by digest", host + "/team/app@" + srcDigest(t, img).String(), srcDigest(t, img), "image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ParseSource("docker://" + tc.ref)
			assert.NilError(t, err)
			got, err := Open(ctx, src, WithNameOptions(name.Insecure), WithRemoteOptions(remote.WithUserAgent("exportreport-test")))
			assert.NilError(t, err)
			assert.Equal(t, srcDigest(t, got), tc.want)
			mt, err := got.MediaType()
			assert.NilError(t, err)
			assert.Equal(t, mt.IsIndex(), tc.kind == "index")
		})
	}

	t.Run("missing tag", func(t *testing.T) {
		_, err := Open(ctx, Source{Transport: TransportRemote, Ref: host + "/team/app:nope"}, WithNameOptions(name.Insecure))
		assert.ErrorIs(t, err, badinput.Err)
		assert.ErrorContains(t, err, "not found in the registry")
	})
	t.Run("registry down is not bad input", func(t *testing.T) {
		down := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		downHost := strings.TrimPrefix(down.URL, "http://")
		down.Close()
		_, err := Open(ctx, Source{Transport: TransportRemote, Ref: downHost + "/a:b"}, WithNameOptions(name.Insecure),
			WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1})))
		assert.Assert(t, err != nil)
		assert.Check(t, !errors.Is(err, badinput.Err), "got %v", err)
	})
}

// ---- platforms ----

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    v1.Platform
		wantErr string
	}{
		{in: "linux/amd64", want: v1.Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm/v7", want: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{in: "windows/amd64:10.0.17763.1879", want: v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1879"}},
		{in: "linux", wantErr: `-platform "linux": want OS/ARCH[/VARIANT]`},
		{in: "", wantErr: "want OS/ARCH"},
		{in: "a/b/c/d", wantErr: "too many slashes"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePlatform(tc.in)
			if tc.wantErr != "" {
				assert.ErrorIs(t, err, badinput.Err)
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, *got, tc.want)
		})
	}
}

func TestSelectPlatform(t *testing.T) {
	platforms := []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6"}
	idx := srcIndex(t, platforms...)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	byPlatform := map[string]v1.Hash{}
	for _, d := range im.Manifests {
		byPlatform[d.Platform.String()] = d.Digest
	}
	// An index inside an index is searched too.
	outer := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: idx})
	amd64Image := srcImage(t, "linux/amd64")
	arm64Image := srcImage(t, "linux/arm64")
	// Descriptors without platforms (a layout of tagged images): configs say.
	untagged := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: amd64Image}, mutate.IndexAddendum{Add: arm64Image})

	tests := []struct {
		name     string
		in       Artifact
		platform string
		want     v1.Hash
		wantErr  string
	}{
		{"exact", idx, "linux/amd64", byPlatform["linux/amd64"], ""},
		{"arm64 without its default variant", idx, "linux/arm64", byPlatform["linux/arm64/v8"], ""},
		{"arm64 with its default variant", idx, "linux/arm64/v8", byPlatform["linux/arm64/v8"], ""},
		{"variant", idx, "linux/arm/v6", byPlatform["linux/arm/v6"], ""},
		{"nested index", outer, "linux/arm/v7", byPlatform["linux/arm/v7"], ""},
		{"ambiguous", idx, "linux/arm", v1.Hash{}, "several images match (linux/arm/v7, linux/arm/v6)"},
		{"absent", idx, "linux/s390x", v1.Hash{}, "-platform linux/s390x: not in the index (available: linux/amd64, linux/arm64/v8, linux/arm/v7, linux/arm/v6)"},
		{"platform from the config", untagged, "linux/arm64", srcDigest(t, arm64Image), ""},
		{"platform from the config, absent", untagged, "linux/ppc64le", v1.Hash{}, "(available: linux/amd64, linux/arm64)"},
		{"image of that platform", amd64Image, "linux/amd64", srcDigest(t, amd64Image), ""},
		{"image of another platform", amd64Image, "linux/arm64", v1.Hash{}, "-platform linux/arm64: the image is linux/amd64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePlatform(tc.platform)
			assert.NilError(t, err)
			got, err := SelectPlatform(tc.in, p, nil)
			if tc.wantErr != "" {
				assert.ErrorIs(t, err, badinput.Err)
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, srcDigest(t, got), tc.want)
			_, ok := got.(v1.Image)
			assert.Check(t, ok, "got %T, want an image", got)
		})
	}

	t.Run("nil platform", func(t *testing.T) {
		got, err := SelectPlatform(idx, nil, nil)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, idx))
	})
	t.Run("image without a platform", func(t *testing.T) {
		img := srcImage(t, "")
		got, err := SelectPlatform(img, &v1.Platform{OS: "linux", Architecture: "amd64"}, nil)
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), srcDigest(t, img))
	})
}
