package export

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

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
