package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
)

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
