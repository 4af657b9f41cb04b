package export

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"gotest.tools/v3/assert"

	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

func TestRunOCILayout(t *testing.T) {
	reg := newTestRegistry(t, nil)
	dir := filepath.Join(t.TempDir(), "layout")

	img := seededImage(t, 10, 512, 2)
	opts := testOptions(t, img, reg.ref("team/app:1.0"), reg.ref("team/app:latest"))
	opts.OCILayout = dir
	rep, err := Run(context.Background(), opts)
	assert.NilError(t, err)

	idx, err := layout.ImageIndexFromPath(dir)
	assert.NilError(t, err)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Equal(t, len(im.Manifests), 2) // one per tag
	assert.Equal(t, im.Manifests[0].Digest.String(), rep.Image.Digest)
	assert.DeepEqual(t, im.Manifests[0].Annotations, map[string]string{
		ourlayout.AnnotationRefName:   "1.0",
		ourlayout.AnnotationImageName: reg.ref("team/app:1.0"),
	})
	assert.DeepEqual(t, im.Manifests[1].Annotations, map[string]string{
		ourlayout.AnnotationRefName:   "latest",
		ourlayout.AnnotationImageName: reg.ref("team/app:latest"),
	})
	got, err := idx.Image(im.Manifests[0].Digest)
	assert.NilError(t, err)
	assert.NilError(t, validate.Image(got))

	// Another tag is appended; the same tag again replaces its descriptor.
	other := seededImage(t, 11, 512, 1)
	opts2 := testOptions(t, other, reg.ref("team/app:2.0"))
	opts2.OCILayout = dir
	_, err = Run(context.Background(), opts2)
	assert.NilError(t, err)
	idxFromAnIndex, err := random.Index(256, 1, 2, random.WithSource(rand.NewSource(12)))
	assert.NilError(t, err)
	opts3 := testOptions(t, idxFromAnIndex, reg.ref("team/app:1.0"))
	opts3.OCILayout = dir
	_, err = Run(context.Background(), opts3)
	assert.NilError(t, err)

	idx, err = layout.ImageIndexFromPath(dir)
	assert.NilError(t, err)
	im, err = idx.IndexManifest()
	assert.NilError(t, err)
	byRef := map[string]v1.Descriptor{}
	for _, d := range im.Manifests {
		byRef[d.Annotations[ourlayout.AnnotationRefName]] = d
	}
	assert.Equal(t, len(im.Manifests), 3, "%v", im.Manifests) // latest, 2.0, 1.0 again
	assert.Equal(t, byRef["latest"].Digest.String(), digestOf(t, img))
	assert.Equal(t, byRef["2.0"].Digest.String(), digestOf(t, other))
	assert.Equal(t, byRef["1.0"].Digest.String(), digestOf(t, idxFromAnIndex))
	assert.Assert(t, byRef["1.0"].MediaType.IsIndex())
	child, err := idx.ImageIndex(byRef["1.0"].Digest)
	assert.NilError(t, err)
	assert.NilError(t, validate.Index(child))
	// No temp files are left behind.
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.DeepEqual(t, names, []string{"blobs", "index.json", "oci-layout"})
}

func TestRunOCILayoutIntoExistingLayout(t *testing.T) {
	reg := newTestRegistry(t, nil)
	dir := t.TempDir() // empty directory is accepted
	_, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	opts := testOptions(t, seededImage(t, 13, 256, 1), reg.ref("app:x"))
	opts.OCILayout = dir
	_, err = Run(context.Background(), opts)
	assert.NilError(t, err)
	idx, err := layout.ImageIndexFromPath(dir)
	assert.NilError(t, err)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Equal(t, len(im.Manifests), 1)
}

// TestRunOCILayoutEveryTagByFullName: -oci-layout lists the image under
// every tag of the export, and an export of another repository with the
// same tag part (reg/a:latest, then reg/b:latest) keeps the first: a
// descriptor is replaced only when it names one of the export's tags.
func TestRunOCILayoutEveryTagByFullName(t *testing.T) {
	reg := newTestRegistry(t, nil)
	dir := filepath.Join(t.TempDir(), "layout")
	a, b := seededImage(t, 20, 256, 1), seededImage(t, 21, 256, 1)
	exportToLayout(t, dir, a, reg.ref("a:latest"), reg.ref("a:1.0"))
	exportToLayout(t, dir, b, reg.ref("b:latest"))
	// a:1.0 again, now naming b: only that descriptor is replaced.
	exportToLayout(t, dir, b, reg.ref("a:1.0"))

	idx, err := layout.ImageIndexFromPath(dir)
	assert.NilError(t, err)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	var got []string
	for _, d := range im.Manifests {
		got = append(got, d.Annotations[ourlayout.AnnotationImageName]+" "+d.Annotations[ourlayout.AnnotationRefName]+" "+d.Digest.String())
	}
	assert.DeepEqual(t, got, []string{
		reg.ref("a:latest") + " latest " + digestOf(t, a),
		reg.ref("b:latest") + " latest " + digestOf(t, b),
		reg.ref("a:1.0") + " 1.0 " + digestOf(t, b),
	})
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		assert.NilError(t, err)
		assert.NilError(t, validate.Image(img))
	}
}

// exportToLayout exports art to tags and into the OCI layout dir.
func exportToLayout(t *testing.T, dir string, art Artifact, tags ...string) {
	t.Helper()
	opts := testOptions(t, art, tags...)
	opts.OCILayout = dir
	_, err := Run(context.Background(), opts)
	assert.NilError(t, err)
}
