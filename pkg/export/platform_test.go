package export

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
)

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
