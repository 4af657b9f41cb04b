package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/exportreport/exportreport/test/distribution"
)

// An OCI layout pushed to two tags of one repository and one tag on a second
// registry: the report's digest is what every tag serves.
func TestExportLayoutToTwoRegistries(t *testing.T) {
	t.Parallel()
	regA, regB := distribution.Start(t), distribution.Start(t)
	img := newImage(t, "two-registries", amd64)
	src := writeLayout(t, img)
	tags := []string{
		regA.Host() + "/team/app:latest",
		regA.Host() + "/team/app:1.4.2",
		regB.Host() + "/mirror/app:1.4.2",
	}
	work := t.TempDir()
	reportPath := filepath.Join(work, "report.toml")

	res := run(t, "export-step", work, nil, append([]string{"-source", "oci:" + src, "-report", reportPath,
		"-insecure-registry", regA.Host(), "-insecure-registry", regB.Host()}, tags...)...)
	assertExit(t, res, 0)

	want := descriptorOf(t, img)
	r := readReport(t, reportPath)
	assertReportDescribes(t, r, tags, want)
	assert.Equal(t, stdoutLine(t, res), want.Digest.String())
	assertServed(t, regA, onlyTags(r, tags[:2]))
	assertServed(t, regB, onlyTags(r, tags[2:]))
	assert.DeepEqual(t, regA.Catalog(t), []string{"team/app"})
	assert.DeepEqual(t, regB.Catalog(t), []string{"mirror/app"})
}

// onlyTags is r restricted to some of its tags.
func onlyTags(r report, tags []string) report {
	r.Image.Tags = tags
	return r
}

// An image index: the whole index by default, one child with -platform.
func TestExportIndex(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	idx, images := newIndex(t, "index")
	src := writeLayout(t, idx)

	tests := []struct {
		name     string
		platform []string
		want     describable
	}{
		{name: "whole index", want: idx},
		{name: "linux/arm64", platform: []string{"-platform", "linux/arm64"}, want: images["arm64"]},
		{name: "linux/amd64", platform: []string{"-platform", "linux/amd64"}, want: images["amd64"]},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := reg.Host() + "/index/case" + string(rune('a'+i))
			tags := []string{repo + ":latest", repo + ":v1"}
			work := t.TempDir()
			reportPath := filepath.Join(work, "report.toml")
			args := append([]string{"-source", "oci:" + src, "-report", reportPath, "-insecure-registry", reg.Host()}, tc.platform...)
			res := run(t, "export-step", work, nil, append(args, tags...)...)
			assertExit(t, res, 0)

			r := readReport(t, reportPath)
			assertReportDescribes(t, r, tags, descriptorOf(t, tc.want))
			assertServed(t, reg, r)
			if tc.platform != nil {
				return
			}
			// Both children of the index were pushed.
			ref, err := name.ParseReference(tags[0])
			assert.NilError(t, err)
			got, err := remote.Index(ref, reg.RemoteOptions()...)
			assert.NilError(t, err)
			manifest, err := got.IndexManifest()
			assert.NilError(t, err)
			var children []string
			for _, child := range manifest.Manifests {
				children = append(children, child.Digest.String())
			}
			sort.Strings(children)
			var want []string
			for _, img := range images {
				want = append(want, descriptorOf(t, img).Digest.String())
			}
			sort.Strings(want)
			assert.DeepEqual(t, children, want)
		})
	}
}

// The same export with no -report flag writes ./report.toml, and
// CNB_REPORT_PATH overrides that default; -report-schema=platform spells keys
// as the Buildpacks lifecycle does.
func TestReportPathAndSchema(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	img := newImage(t, "report-path", amd64)
	src := writeLayout(t, img)
	want := descriptorOf(t, img)

	tests := []struct {
		name       string
		env        func(work string) []string
		flags      func(work string) []string
		wantReport func(work string) string
		schema     string
	}{
		{
			name:       "default ./report.toml",
			env:        func(string) []string { return nil },
			flags:      func(string) []string { return nil },
			wantReport: func(work string) string { return filepath.Join(work, "report.toml") },
		},
		{
			name:       "CNB_REPORT_PATH",
			env:        func(work string) []string { return []string{"CNB_REPORT_PATH=" + filepath.Join(work, "env.toml")} },
			flags:      func(string) []string { return nil },
			wantReport: func(work string) string { return filepath.Join(work, "env.toml") },
		},
		{
			name:       "-report beats CNB_REPORT_PATH",
			env:        func(work string) []string { return []string{"CNB_REPORT_PATH=" + filepath.Join(work, "env.toml")} },
			flags:      func(work string) []string { return []string{"-report", filepath.Join(work, "flag.toml")} },
			wantReport: func(work string) string { return filepath.Join(work, "flag.toml") },
		},
		{
			name:       "platform schema",
			env:        func(string) []string { return nil },
			flags:      func(string) []string { return []string{"-report-schema", "platform"} },
			wantReport: func(work string) string { return filepath.Join(work, "report.toml") },
			schema:     "platform",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			tag := reg.Host() + "/report/path:" + string(rune('a'+i))
			args := append(tc.flags(work), "-source", "oci:"+src, "-insecure-registry", reg.Host(), tag)
			res := run(t, "export-step", work, tc.env(work), args...)
			assertExit(t, res, 0)

			entries, err := os.ReadDir(work)
			assert.NilError(t, err)
			assert.Assert(t, is.Len(entries, 1), "only the report is written to the working directory")
			if tc.schema != "platform" {
				assertReportDescribes(t, readReport(t, tc.wantReport(work)), []string{tag}, want)
				return
			}
			var doc map[string]map[string]any
			_, err = toml.DecodeFile(tc.wantReport(work), &doc)
			assert.NilError(t, err)
			var keys []string
			for k := range doc["image"] {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			assert.DeepEqual(t, keys, []string{"digest", "manifest-size", "tags"})
			assert.Equal(t, doc["image"]["digest"], want.Digest.String())
			assert.Equal(t, doc["image"]["manifest-size"], want.Size)
		})
	}
}

// A daemon export: the report's image_id is the ID the engine reports.
func TestExportToDaemon(t *testing.T) {
	t.Parallel()
	distribution.RequireDocker(t)
	docker := distribution.RequireTool(t, "docker")
	img := newImage(t, "daemon", amd64)
	src := writeLayout(t, img)
	repo := "exportreport.test/integration/daemon"
	tags := []string{repo + ":" + uniqueTag(), repo + ":" + uniqueTag()}
	t.Cleanup(func() {
		for _, tag := range tags {
			// Not asserted: the image is absent when the export failed.
			icmd.RunCmd(icmd.Command(docker, "image", "rm", "--force", tag), icmd.WithTimeout(time.Minute))
		}
	})
	work := t.TempDir()
	reportPath := filepath.Join(work, "report.toml")

	res := run(t, "export-step", work, nil, append([]string{"-daemon", "-source", "oci:" + src, "-report", reportPath}, tags...)...)
	assertExit(t, res, 0)

	r := readReport(t, reportPath)
	assert.DeepEqual(t, r.Image.Tags, tags)
	assert.Equal(t, r.Image.Digest, "", "a daemon export has no registry digest")
	assert.Equal(t, stdoutLine(t, res), r.Image.ImageID, "stdout is the image ID")
	configDigest, err := img.ConfigName()
	assert.NilError(t, err)
	for _, tag := range tags {
		id := runTool(t, docker, "image", "inspect", "--format", "{{.Id}}", tag)
		assert.Check(t, is.Equal(r.Image.ImageID, id), "docker image inspect %s", tag)
	}
	// Docker's image ID is the digest of the config: the image loaded is ours.
	assert.Equal(t, r.Image.ImageID, configDigest.String())
}
