package pushed

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
)

// fixtures are the builders' files under testdata, with the kind each is
// and what it takes besides.
var fixtures = []struct {
	path string
	kind Kind
	opts Options
}{
	{"ko/image-refs", Refs, Options{}},
	{"crane/image-refs", Refs, Options{}},
	{"kaniko/digest-file", Digest, Options{Image: "registry.example.com/team/app:1.0"}},
	{"kaniko/image-name-with-digest-file", Refs, Options{}},
	{"kaniko/image-name-tag-with-digest-file", Refs, Options{}},
	{"buildx/build.json", Buildx, Options{}},
	{"buildx/bake.json", Buildx, Options{}},
	{"jib/jib-image.json", Jib, Options{}},
	{"../../report/testdata/lifecycle/registry.toml", Report, Options{}},
}

// TestParseFixtures: each builder's file gives the images pinned in its
// golden file (testdata/golden/*.json; go test -update rewrites them),
// read as its kind and as auto.
func TestParseFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", fx.path))
			assert.NilError(t, err)
			kind, imgs, err := Parse(fx.kind, fx.path, data, fx.opts)
			assert.NilError(t, err)
			assert.Equal(t, kind, fx.kind)
			out, err := json.MarshalIndent(imgs, "", "  ")
			assert.NilError(t, err)
			golden.Assert(t, string(out)+"\n", filepath.Join("golden", strings.ReplaceAll(strings.TrimPrefix(fx.path, "../../"), "/", "_")+".json"))

			detected, again, err := Parse(Auto, fx.path, data, fx.opts)
			assert.NilError(t, err)
			assert.Equal(t, detected, fx.kind)
			assert.DeepEqual(t, again, imgs)
		})
	}
}

// TestEachKindRefusesTheOthers: fed another kind's file, every parser
// fails with one line naming the input, as bad input (exit 2).
func TestEachKindRefusesTheOthers(t *testing.T) {
	for _, fx := range fixtures {
		data, err := os.ReadFile(filepath.Join("testdata", fx.path))
		assert.NilError(t, err)
		for _, k := range []Kind{Report, Refs, Digest, Buildx, Jib} {
			if k == fx.kind {
				continue
			}
			t.Run(string(k)+"/"+fx.path, func(t *testing.T) {
				_, imgs, err := Parse(k, fx.path, data, Options{Image: "registry.example.com/team/app:1.0"})
				assert.Assert(t, err != nil, "parsed as %s: %+v", k, imgs)
				assert.Assert(t, errors.Is(err, badinput.Err) || errors.Is(err, report.ErrInvalid), "%v", err)
				assert.Assert(t, !strings.ContainsAny(err.Error(), "\r\n"), "%q", err)
				assert.Check(t, is.Contains(err.Error(), fx.path))
			})
		}
	}
}

func TestParseErrors(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, data string
		kind       Kind
		opts       Options
		want       string
	}{
		{"empty auto", "", Auto, Options{}, "empty: could be any of"},
		{"binary auto", "\xff\xfe", Auto, Options{}, "not text"},
		{"JSON neither", `{"a":1}`, Auto, Options{}, "JSON, so buildx or jib, but has neither"},
		{"bad JSON", `{"a":`, Auto, Options{}, "JSON, so buildx or jib, but does not decode"},
		{"unknown text", "hello\nworld", Auto, Options{}, `line 1 is "hello"`},
		{"digest without image", d, Digest, Options{}, "give -image REF"},
		{"digest not lowercase", strings.ToUpper(d), Digest, Options{Image: "r.example/a"}, "is not sha256:<64 lowercase hex>"},
		{"digest sha512", "sha512:" + strings.Repeat("ab", 64), Digest, Options{Image: "r.example/a"}, "is not sha256"},
		{"digest -image other digest", d, Digest, Options{Image: "r.example/a@sha256:" + strings.Repeat("cd", 32)}, "-image r.example/a@sha256:cdcd"},
		{"refs without digest", "r.example/a:1", Refs, Options{}, `line 1: "r.example/a:1" has no @sha256:<hex>`},
		{"refs bad reference", "r.example/A B@" + d, Refs, Options{}, "line 1: reference"},
		{"refs short digest", "r.example/a@sha256:abc", Refs, Options{}, "line 1: digest"},
		{"refs only blank", "\n\n", Refs, Options{}, "names no image"},
		{"buildx no name", `{"containerimage.digest":"` + d + `"}`, Buildx, Options{}, "has no image.name"},
		{"buildx descriptor differs", `{"containerimage.digest":"` + d + `","image.name":"r.example/a:1","containerimage.descriptor":{"digest":"sha256:` + strings.Repeat("cd", 32) + `","size":1}}`, Buildx, Options{}, "containerimage.descriptor has digest"},
		{"bake target without digest", `{"t":{"image.name":"r.example/a:1"}}`, Buildx, Options{}, `target "t" has no containerimage.digest`},
		{"jib no digest", `{"image":"r.example/a:1"}`, Jib, Options{}, "image and imageDigest are required"},
		{"jib bad tag", `{"image":"r.example/a:1","imageDigest":"` + d + `","tags":["a/b"]}`, Jib, Options{}, `tag "a/b" is not a tag`},
		{"layout kind to Parse", "", OCILayout, Options{}, "a layout is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.kind, "in", []byte(tc.data), tc.opts)
			assert.ErrorContains(t, err, tc.want)
			assert.Assert(t, errors.Is(err, badinput.Err) || errors.Is(err, report.ErrInvalid), "%v", err)
			assert.Assert(t, !strings.ContainsAny(err.Error(), "\r\n"), "%q", err)
		})
	}
}

func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    From
		wantErr string
	}{
		{in: "refs:/workspace/refs.txt", want: From{Refs, "/workspace/refs.txt"}},
		{in: "oci-layout:C:/odd:path", want: From{OCILayout, "C:/odd:path"}},
		{in: "auto:x", want: From{Auto, "x"}},
		{in: "refs", wantErr: "want KIND:PATH"},
		{in: "refs:", wantErr: "want KIND:PATH"},
		{in: "kaniko:x", wantErr: `unknown kind "kaniko"; known: report, refs, digest, buildx, jib, oci-layout, auto`},
	} {
		got, err := ParseFrom(tc.in)
		if tc.wantErr != "" {
			assert.ErrorContains(t, err, tc.wantErr)
			continue
		}
		assert.NilError(t, err)
		assert.DeepEqual(t, got, tc.want)
	}
}

// TestRefsGrouping: tags of one digest are one image; an untagged digest in
// a repository that has an image is a platform manifest (ko); a tagged one
// is an image of its own; a repeated line counts once.
func TestRefsGrouping(t *testing.T) {
	d1, d2, d3 := "sha256:"+strings.Repeat("11", 32), "sha256:"+strings.Repeat("22", 32), "sha256:"+strings.Repeat("33", 32)
	in := strings.Join([]string{
		"r.example/a:1@" + d1,
		"r.example/a:latest@" + d1,
		"r.example/a@" + d2, // a platform manifest of the index d1
		"r.example/a:1@" + d1,
		"r.example/a:other@" + d3, // tagged: an image
		"r.example/b@" + d2,       // another repository
	}, "\r\n")
	_, imgs, err := Parse(Refs, "refs", []byte(in), Options{})
	assert.NilError(t, err)
	assert.DeepEqual(t, imgs, []Image{
		{Refs: []string{"r.example/a:1", "r.example/a:latest"}, Digest: d1, Platforms: []string{d2}, Verify: true},
		{Refs: []string{"r.example/a:other"}, Digest: d3, Verify: true},
		{Refs: []string{"r.example/b"}, Digest: d2, Verify: true},
	})
}

// TestReadLayout reads layouts as skopeo (ref.name a tag), crane/ko (no
// names) and export-step (containerd name) write them.
func TestReadLayout(t *testing.T) {
	img, err := random.Image(64, 1)
	assert.NilError(t, err)
	d, err := img.Digest()
	assert.NilError(t, err)
	write := func(t *testing.T, annotations ...map[string]string) string {
		dir := t.TempDir()
		p, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		for _, a := range annotations {
			assert.NilError(t, p.AppendImage(img, layout.WithAnnotations(a)))
		}
		return dir
	}
	for _, tc := range []struct {
		name        string
		annotations []map[string]string
		opts        Options
		want        []string
		wantErr     string
	}{
		{"tag names and -image", []map[string]string{{ourlayout.AnnotationRefName: "1.0"}, {ourlayout.AnnotationRefName: "latest"}},
			Options{Image: "r.example/team/app"}, []string{"r.example/team/app:1.0", "r.example/team/app:latest"}, ""},
		{"tag names without -image", []map[string]string{{ourlayout.AnnotationRefName: "1.0"}}, Options{}, nil, "is a tag only: give -image REPOSITORY"},
		{"full names", []map[string]string{{ourlayout.AnnotationRefName: "r.example/a:1", ourlayout.AnnotationImageName: "r.example/team/app:1"}},
			Options{}, []string{"r.example/team/app:1"}, ""},
		{"no name, -image", []map[string]string{nil}, Options{Image: "r.example/a:1"}, []string{"r.example/a:1"}, ""},
		{"no name", []map[string]string{nil}, Options{}, nil, "has no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, tc.annotations...)
			imgs, err := ReadLayout(dir, tc.opts)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, badinput.Err))
				return
			}
			assert.NilError(t, err)
			assert.Assert(t, is.Len(imgs, 1))
			assert.DeepEqual(t, imgs[0].Refs, tc.want)
			assert.Equal(t, imgs[0].Digest, d.String())
			assert.Assert(t, imgs[0].Size > 0 && imgs[0].MediaType != "")
		})
	}

	t.Run("not a layout", func(t *testing.T) {
		_, err := ReadLayout(t.TempDir(), Options{})
		assert.ErrorContains(t, err, "no index.json: not an OCI image layout")
		_, err = ReadLayout(filepath.Join(t.TempDir(), "missing"), Options{})
		assert.ErrorContains(t, err, "no such file or directory")
	})
	t.Run("symlinked index.json", func(t *testing.T) {
		dir := write(t, map[string]string{ourlayout.AnnotationRefName: "1"})
		assert.NilError(t, os.Rename(filepath.Join(dir, "index.json"), filepath.Join(dir, "real.json")))
		assert.NilError(t, os.Symlink("real.json", filepath.Join(dir, "index.json")))
		_, err := ReadLayout(dir, Options{Image: "r.example/a"})
		assert.ErrorContains(t, err, "index.json is not a regular file")
	})
	t.Run("an index of the index", func(t *testing.T) {
		idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
		dir := t.TempDir()
		p, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendIndex(idx, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "multi"})))
		imgs, err := ReadLayout(dir, Options{Image: "r.example/a"})
		assert.NilError(t, err)
		id, _ := idx.Digest()
		assert.Equal(t, imgs[0].Digest, id.String())
		assert.Equal(t, imgs[0].Refs[0], "r.example/a:multi")
	})
}
