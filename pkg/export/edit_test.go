package export

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// editBase is an image whose config has something of everything Apply
// edits.
func editBase(t *testing.T) v1.Image {
	t.Helper()
	img := srcImage(t, "linux/amd64")
	cfg, err := img.ConfigFile()
	assert.NilError(t, err)
	cfg = cfg.DeepCopy()
	cfg.Config = v1.Config{
		Env:        []string{"PATH=/usr/bin", "A=1", "C=3"},
		Labels:     map[string]string{"keep": "yes", "change": "old"},
		Entrypoint: []string{"/old"},
		Cmd:        []string{"old"},
		WorkingDir: "/old",
		User:       "old",
	}
	img, err = mutate.ConfigFile(img, cfg)
	assert.NilError(t, err)
	return img
}

func strp(s string) *string { return &s }

func TestApplyConfig(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	base := editBase(t)
	baseCfg, err := base.ConfigFile()
	assert.NilError(t, err)

	tests := []struct {
		name  string
		edits Edits
		want  func(c *v1.Config)
	}{
		{"labels merged", Edits{Labels: map[string]string{"change": "new", "add": "1"}}, func(c *v1.Config) {
			c.Labels = map[string]string{"keep": "yes", "change": "new", "add": "1"}
		}},
		{"env set or replaced in place", Edits{Env: []string{"C=30", "B=2", "A=10", "EMPTY="}}, func(c *v1.Config) {
			c.Env = []string{"PATH=/usr/bin", "A=10", "C=30", "B=2", "EMPTY="}
		}},
		{"entrypoint and cmd replaced", Edits{Entrypoint: []string{"/bin/app", "--flag"}, Cmd: []string{"serve"}}, func(c *v1.Config) {
			c.Entrypoint, c.Cmd = []string{"/bin/app", "--flag"}, []string{"serve"}
		}},
		{"empty entrypoint and cmd clear them", Edits{Entrypoint: []string{}, Cmd: []string{}}, func(c *v1.Config) {
			c.Entrypoint, c.Cmd = nil, nil
		}},
		{"workdir and user", Edits{Workdir: strp("/srv"), User: strp("1000:1000")}, func(c *v1.Config) {
			c.WorkingDir, c.User = "/srv", "1000:1000"
		}},
		{"empty workdir and user", Edits{Workdir: strp(""), User: strp("")}, func(c *v1.Config) {
			c.WorkingDir, c.User = "", ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.edits.Created = created
			got, err := Apply(context.Background(), base, tc.edits, nil)
			assert.NilError(t, err)
			img, ok := got.(v1.Image)
			assert.Assert(t, ok, "got %T", got)
			cfg, err := img.ConfigFile()
			assert.NilError(t, err)

			want := baseCfg.DeepCopy().Config
			tc.want(&want)
			assert.DeepEqual(t, cfg.Config, want)
			assert.Equal(t, cfg.Created.Time.UTC(), created)
			assert.DeepEqual(t, cfg.History, baseCfg.History) // no layer, no history
			assert.DeepEqual(t, cfg.RootFS, baseCfg.RootFS)
			assert.Equal(t, cfg.Architecture, "amd64")
			// The base is not modified.
			again, err := base.ConfigFile()
			assert.NilError(t, err)
			assert.DeepEqual(t, again, baseCfg)
		})
	}
}

func TestApplyEmptyIsUnchanged(t *testing.T) {
	for _, a := range []Artifact{editBase(t), srcIndex(t, "linux/amd64", "linux/arm64")} {
		got, err := Apply(context.Background(), a, Edits{Created: time.Unix(42, 0)}, nil)
		assert.NilError(t, err)
		assert.Equal(t, got, a) // the same value, not a copy
		assert.Equal(t, srcDigest(t, got), srcDigest(t, a))
	}
}

func TestApplyBadEnv(t *testing.T) {
	_, err := Apply(context.Background(), editBase(t), Edits{Env: []string{"OK=1", "NOEQUALS"}}, nil)
	assert.ErrorIs(t, err, badinput.Err)
	assert.ErrorContains(t, err, `-env "NOEQUALS": want KEY=VALUE`)
	_, err = Apply(context.Background(), editBase(t), Edits{Env: []string{"=x"}}, nil)
	assert.ErrorIs(t, err, badinput.Err)
}

func TestApplyAppend(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	dir := layerFixture(t, t.TempDir(), time.Unix(1, 0))
	docker := editBase(t)
	oci := mutate.MediaType(mutate.ConfigMediaType(docker, types.OCIConfigJSON), types.OCIManifestSchema1)

	tests := []struct {
		name      string
		base      v1.Image
		layerType types.MediaType
	}{
		{"docker image gets a docker layer", docker, types.DockerLayer},
		{"OCI image gets an OCI layer", oci, types.OCILayer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			baseCfg, err := tc.base.ConfigFile()
			assert.NilError(t, err)
			baseManifest, err := tc.base.Manifest()
			assert.NilError(t, err)
			baseType, err := tc.base.MediaType()
			assert.NilError(t, err)

			got, err := Apply(context.Background(), tc.base, Edits{
				Append:  []AppendSpec{{Dir: dir, Dest: "/srv/www"}, {Dir: dir}},
				Labels:  map[string]string{"a": "b"},
				Created: created,
			}, nil)
			assert.NilError(t, err)
			img := got.(v1.Image)

			mt, err := img.MediaType()
			assert.NilError(t, err)
			assert.Equal(t, mt, baseType)
			m, err := img.Manifest()
			assert.NilError(t, err)
			assert.Assert(t, is.Len(m.Layers, len(baseManifest.Layers)+2))
			assert.DeepEqual(t, m.Layers[:len(baseManifest.Layers)], baseManifest.Layers)
			for _, l := range m.Layers[len(baseManifest.Layers):] {
				assert.Equal(t, l.MediaType, tc.layerType)
			}

			cfg, err := img.ConfigFile()
			assert.NilError(t, err)
			assert.Equal(t, cfg.Created.Time.UTC(), created)
			assert.Equal(t, cfg.Config.Labels["a"], "b")
			assert.Assert(t, is.Len(cfg.RootFS.DiffIDs, len(baseCfg.RootFS.DiffIDs)+2))
			assert.Assert(t, is.Len(cfg.History, len(baseCfg.History)+2))
			for i, wantDest := range []string{"/srv/www/", "/"} {
				h := cfg.History[len(baseCfg.History)+i]
				assert.Equal(t, h.Created.Time.UTC(), created)
				assert.Equal(t, h.CreatedBy, "export-step -append: add directory at "+wantDest)
				assert.Check(t, !h.EmptyLayer)
			}

			// The layers hold the directory, where it was asked for.
			layers, err := img.Layers()
			assert.NilError(t, err)
			listing := tarListing(t, layers[len(layers)-2])
			assert.Check(t, is.Contains(listing, "srv/www/index.html"))
			listing = tarListing(t, layers[len(layers)-1])
			assert.Check(t, is.Contains(listing, "0 index.html "))
		})
	}
}

func TestApplyReproducible(t *testing.T) {
	ctx := context.Background()
	base := editBase(t)
	// The same content in two places with different file times.
	dir1 := layerFixture(t, t.TempDir(), time.Unix(1000, 0))
	dir2 := layerFixture(t, t.TempDir(), time.Unix(99999999, 0))
	edits := func(dir string, epoch int64) Edits {
		return Edits{
			Append:     []AppendSpec{{Dir: dir, Dest: "/app"}},
			Labels:     map[string]string{"org.opencontainers.image.source": "https://example.com/app", "b": "2", "a": "1"},
			Env:        []string{"MODE=prod"},
			Entrypoint: []string{"/app/bin/tool"},
			Created:    time.Unix(epoch, 0),
		}
	}
	apply := func(e Edits) v1.Hash {
		t.Helper()
		got, err := Apply(ctx, base, e, nil)
		assert.NilError(t, err)
		return srcDigest(t, got)
	}
	first := apply(edits(dir1, 1700000000))
	assert.Equal(t, apply(edits(dir1, 1700000000)), first, "the same inputs twice")
	assert.Equal(t, apply(edits(dir2, 1700000000)), first, "the same content elsewhere, other file times")
	assert.Check(t, apply(edits(dir1, 1700000001)) != first, "another SOURCE_DATE_EPOCH")

	// And for an index.
	idx := srcIndex(t, "linux/amd64", "linux/arm64")
	got1, err := Apply(ctx, idx, edits(dir1, 1700000000), nil)
	assert.NilError(t, err)
	got2, err := Apply(ctx, idx, edits(dir2, 1700000000), nil)
	assert.NilError(t, err)
	assert.Equal(t, srcDigest(t, got1), srcDigest(t, got2))
}

func TestApplyIndex(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	dir := layerFixture(t, t.TempDir(), time.Unix(1, 0))
	amd64, arm64 := srcImage(t, "linux/amd64"), srcImage(t, "linux/arm64")
	attestation := srcImage(t, "")
	annotations := map[string]string{"org.opencontainers.image.ref.name": "v1", "x": "y"}

	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList} {
		t.Run(string(mt), func(t *testing.T) {
			idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mt),
				mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{
					Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}, Annotations: annotations}},
				mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{
					Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
				mutate.IndexAddendum{Add: attestation, Descriptor: v1.Descriptor{
					Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
					Annotations: map[string]string{
						referenceTypeAnnotation:       attestationManifest,
						"vnd.docker.reference.digest": srcDigest(t, amd64).String(),
					}}},
			)
			idx = mutate.Annotations(idx, map[string]string{"index": "annotation"}).(v1.ImageIndex)

			got, err := Apply(context.Background(), idx, Edits{
				Append:  []AppendSpec{{Dir: dir, Dest: "/app"}},
				Labels:  map[string]string{"edited": "yes"},
				Created: created,
			}, nil)
			assert.NilError(t, err)
			out, ok := got.(v1.ImageIndex)
			assert.Assert(t, ok, "got %T", got)
			gotType, err := out.MediaType()
			assert.NilError(t, err)
			assert.Equal(t, gotType, mt)

			before, err := idx.IndexManifest()
			assert.NilError(t, err)
			after, err := out.IndexManifest()
			assert.NilError(t, err)
			assert.Equal(t, after.MediaType, mt)
			assert.DeepEqual(t, after.Annotations, map[string]string{"index": "annotation"})
			// The attestation described an image that no longer exists.
			assert.Assert(t, is.Len(after.Manifests, 2))
			var appended v1.Hash
			for i, d := range after.Manifests {
				assert.DeepEqual(t, d.Platform, before.Manifests[i].Platform)
				assert.DeepEqual(t, d.Annotations, before.Manifests[i].Annotations)
				assert.Equal(t, d.MediaType, before.Manifests[i].MediaType)
				assert.Check(t, d.Digest != before.Manifests[i].Digest)

				img, err := out.Image(d.Digest)
				assert.NilError(t, err)
				assert.Equal(t, srcDigest(t, img), d.Digest)
				cfg, err := img.ConfigFile()
				assert.NilError(t, err)
				assert.Equal(t, cfg.Config.Labels["edited"], "yes")
				assert.Equal(t, cfg.Architecture, d.Platform.Architecture)
				m, err := img.Manifest()
				assert.NilError(t, err)
				last := m.Layers[len(m.Layers)-1].Digest
				if i == 0 {
					appended = last
				}
				assert.Equal(t, last, appended, "every image gets the same layer")
			}
		})
	}
}
