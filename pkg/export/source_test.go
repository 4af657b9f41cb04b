package export

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
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
