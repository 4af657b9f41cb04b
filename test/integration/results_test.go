package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

const (
	refNameAnnotation   = "org.opencontainers.image.ref.name"
	imageNameAnnotation = "io.containerd.image.name"
)

// export-step writes the image into an OCI layout too; report2results turns
// the report into Tekton results and the layout's index.json, one descriptor
// per tag; skopeo and umoci read that layout; every descriptor is what the
// registry serves.
func TestReport2ResultsWithOCILayout(t *testing.T) {
	t.Parallel()
	umoci := distribution.RequireTool(t, "umoci")
	skopeo := distribution.RequireTool(t, "skopeo")
	reg := distribution.Start(t)

	tests := []struct {
		name     string
		artifact func(t *testing.T) describable
	}{
		{name: "image", artifact: func(t *testing.T) describable { return newImage(t, "results-image", amd64) }},
		{name: "index", artifact: func(t *testing.T) describable { idx, _ := newIndex(t, "results-index"); return idx }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			artifact := tc.artifact(t)
			src := writeLayout(t, artifact)
			work := t.TempDir()
			reportPath := filepath.Join(work, "report.toml")
			layoutDir := filepath.Join(work, "layout")
			resultsDir := filepath.Join(work, "results")
			assert.NilError(t, os.Mkdir(resultsDir, 0o755))
			repo := reg.Host() + "/results/" + tc.name
			tags := []string{repo + ":latest", repo + ":v1"}

			res := run(t, "export-step", work, nil, append([]string{"-source", "oci:" + src, "-report", reportPath,
				"-oci-layout", layoutDir, "-insecure-registry", reg.Host()}, tags...)...)
			assertExit(t, res, 0)
			r := readReport(t, reportPath)
			assertReportDescribes(t, r, tags, descriptorOf(t, artifact))

			res = run(t, "report2results", work, nil, "-report", reportPath, "-results-dir", resultsDir,
				"-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES,IMAGE_REF", "-oci-layout", layoutDir, "-offline")
			assertExit(t, res, 0)

			digest := r.Image.Digest
			assert.DeepEqual(t, readResults(t, resultsDir), map[string]string{
				"IMAGE_DIGEST": digest,
				"IMAGE_URL":    tags[0],
				"IMAGES":       tags[0] + "@" + digest + "\n" + tags[1] + "@" + digest,
				"IMAGE_REF":    tags[0] + "@" + digest,
			})

			// index.json: one descriptor per tag (the full reference in
			// io.containerd.image.name, the tag in ref.name, as containerd
			// does), equal to what the registry serves.
			byImageName := indexDescriptors(t, layoutDir)
			var refNames []string
			for _, tag := range tags {
				ref, err := name.NewTag(tag)
				assert.NilError(t, err)
				served, err := remote.Head(ref, reg.RemoteOptions()...)
				assert.NilError(t, err)
				d, ok := byImageName[tag]
				assert.Assert(t, ok, "index.json has no descriptor with %s=%s: %v", imageNameAnnotation, tag, byImageName)
				assert.Check(t, is.Equal(d.Digest, served.Digest))
				assert.Check(t, is.Equal(d.Size, served.Size))
				assert.Check(t, is.Equal(d.MediaType, served.MediaType))
				assert.Check(t, is.Equal(d.Annotations[refNameAnnotation], ref.TagStr()))
				refNames = append(refNames, ref.TagStr())

				raw := []byte(runTool(t, skopeo, "inspect", "--raw", "oci:"+layoutDir+":"+ref.TagStr()))
				assert.Check(t, is.Equal(sha256Digest(raw), digest), "skopeo inspect --raw oci:%s:%s", layoutDir, ref.TagStr())
			}

			listed := strings.Fields(runTool(t, umoci, "ls", "--layout", layoutDir))
			sort.Strings(listed)
			sort.Strings(refNames)
			assert.DeepEqual(t, listed, refNames)
		})
	}
}

// readResults reads every file in a results directory.
func readResults(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	got := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		assert.NilError(t, err)
		got[e.Name()] = string(data)
	}
	return got
}

// indexDescriptors reads a layout's index.json, keyed by the full image name.
func indexDescriptors(t *testing.T, dir string) map[string]v1.Descriptor {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	assert.NilError(t, err)
	var index v1.IndexManifest
	assert.NilError(t, json.Unmarshal(data, &index))
	byRef := map[string]v1.Descriptor{}
	for _, d := range index.Manifests {
		ref := d.Annotations[imageNameAnnotation]
		_, dup := byRef[ref]
		assert.Check(t, !dup, "two descriptors for %s in index.json", ref)
		byRef[ref] = d
	}
	_, err = os.Stat(filepath.Join(dir, "oci-layout"))
	assert.NilError(t, err)
	return byRef
}
