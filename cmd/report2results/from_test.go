package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/report"
)

// pushed is an image pushed to the in-process registry under tags.
type pushedImage struct {
	tags []string
	desc v1.Descriptor
	img  v1.Image
}

func pushTo(t *testing.T, tags ...string) pushedImage {
	t.Helper()
	img, desc := ociImage(t)
	for _, tag := range tags {
		ref, err := name.ParseReference(tag)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(ref, img))
	}
	return pushedImage{tags: tags, desc: desc, img: img}
}

// TestFrom runs report2results on what each builder writes, pointing at
// images really pushed: the results, one HEAD per image (none offline, none
// for a report), ARTIFACT_OUTPUTS, -primary and -write-report.
func TestFrom(t *testing.T) {
	reg := startRegistry(t)
	a := pushTo(t, reg.host+"/team/app:1.0", reg.host+"/team/app:latest")
	b := pushTo(t, reg.host+"/team/other:2.0")
	da, db := a.desc.Digest.String(), b.desc.Digest.String()
	repoA := reg.host + "/team/app"

	layoutDir := t.TempDir()
	p, err := layout.Write(layoutDir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(a.img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})))

	// The lifecycle's layout directory: <dir>/<registry>/<repository>/<tag>.
	cnbLayouts := t.TempDir()
	tagDir := filepath.Join(cnbLayouts, reg.host, "team", "app", "1.0")
	lp, err := layout.Write(tagDir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, lp.AppendImage(a.img))

	artifact := func(repo, digest string) string {
		b, _ := json.Marshal(map[string]string{"uri": repo, "digest": digest, "isBuildArtifact": "true"})
		return string(b)
	}
	for _, tc := range []struct {
		name      string
		file      string // content of in (empty: none)
		args      []string
		wantURL   string
		wantDig   string
		wantImgs  string
		wantHeads int
	}{
		{
			name: "refs (kaniko name-tag-with-digest)", file: fmt.Sprintf("%s@%s\n%s@%s\n", a.tags[0], da, a.tags[1], da),
			args: []string{"-from", "refs:in"}, wantURL: a.tags[0], wantDig: da,
			wantImgs: a.tags[0] + "@" + da + "\n" + a.tags[1] + "@" + da, wantHeads: 1,
		},
		{
			name: "refs, two images, -primary the second", file: fmt.Sprintf("%s@%s\n%s@%s", a.tags[0], da, b.tags[0], db),
			args: []string{"-from", "refs:in", "-primary", b.tags[0]}, wantURL: b.tags[0], wantDig: db,
			wantImgs: a.tags[0] + "@" + da + "\n" + b.tags[0] + "@" + db, wantHeads: 2,
		},
		{
			name: "digest with -image", file: da, args: []string{"-from", "digest:in", "-image", a.tags[0]},
			wantURL: a.tags[0], wantDig: da, wantImgs: a.tags[0] + "@" + da, wantHeads: 1,
		},
		{
			name: "buildx", file: fmt.Sprintf(`{"containerimage.digest":%q,"image.name":"%s,%s"}`, da, a.tags[0], a.tags[1]),
			args: []string{"-from", "buildx:in"}, wantURL: a.tags[0], wantDig: da,
			wantImgs: a.tags[0] + "@" + da + "\n" + a.tags[1] + "@" + da, wantHeads: 1,
		},
		{
			name: "jib, auto", file: fmt.Sprintf(`{"image":%q,"imageDigest":%q,"tags":["1.0","latest"]}`, a.tags[0], da),
			args: []string{"-from", "auto:in"}, wantURL: a.tags[0], wantDig: da,
			wantImgs: a.tags[0] + "@" + da + "\n" + a.tags[1] + "@" + da, wantHeads: 1,
		},
		{
			name: "oci-layout with -image", args: []string{"-from", "oci-layout:" + layoutDir, "-image", repoA},
			wantURL: a.tags[0], wantDig: da, wantImgs: a.tags[0] + "@" + da, wantHeads: 1,
		},
		{
			name: "refs offline", file: fmt.Sprintf("%s@%s\n", a.tags[0], da), args: []string{"-from", "refs:in", "-offline"},
			wantURL: a.tags[0], wantDig: da, wantImgs: a.tags[0] + "@" + da,
		},
		{
			name: "our report: no HEAD", file: fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\n", a.tags[0], da),
			args: []string{"-report", "in"}, wantURL: a.tags[0], wantDig: da, wantImgs: a.tags[0] + "@" + da,
		},
		{
			name: "lifecycle layout export: digest from -layout-dir", file: fmt.Sprintf("[image]\ntags = [%q]\n", a.tags[0]),
			args: []string{"-from", "report:in", "-layout-dir", cnbLayouts}, wantURL: a.tags[0], wantDig: da, wantImgs: a.tags[0] + "@" + da,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workdir(t, "")
			if tc.file != "" {
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "in"), []byte(tc.file), 0o644))
			}
			reg.reset()
			args := append([]string{"-results-dir", "results", "-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES,ARTIFACT_OUTPUTS",
				"-insecure-registry", reg.host, "-write-report", "written.toml"}, tc.args...)
			res := run(t, dir, env(), args...)
			assert.Equal(t, res.code, 0, res.stderr)
			got := readResults(t, filepath.Join(dir, "results"))
			ref, err := name.ParseReference(tc.wantURL)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, map[string]string{
				"IMAGE_DIGEST":     tc.wantDig,
				"IMAGE_URL":        tc.wantURL,
				"IMAGES":           tc.wantImgs,
				"ARTIFACT_OUTPUTS": artifact(ref.Context().Name(), tc.wantDig),
			})
			_, heads := reg.counts()
			assert.Check(t, is.Equal(heads, tc.wantHeads), "HEAD requests")
			w, err := report.Read(filepath.Join(dir, "written.toml"))
			assert.NilError(t, err)
			assert.Check(t, is.Equal(w.Image.Digest, tc.wantDig))
			assert.Check(t, is.Equal(w.Image.Tags[0], tc.wantURL))
		})
	}
}

// TestFromMismatch: a builder's file naming a digest the registry does not
// serve for the tag fails (exit 1), names both, and writes nothing.
func TestFromMismatch(t *testing.T) {
	reg := startRegistry(t)
	a := pushTo(t, reg.host+"/team/app:1.0")
	b := pushTo(t, reg.host+"/team/app:other")
	dir := workdir(t, "")
	in := fmt.Sprintf("%s@%s\n", a.tags[0], b.desc.Digest)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "in"), []byte(in), 0o644))
	res := run(t, dir, env(), "-from", "refs:in", "-results-dir", "results", "-insecure-registry", reg.host,
		"-write-report", "written.toml", "-oci-layout", "layout")
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Check(t, is.Contains(res.stderr, "the builder wrote "+b.desc.Digest.String()+" for "+a.tags[0]+", the registry serves "+a.desc.Digest.String()))
	assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.stderr), "\n"), 0), "one line: %q", res.stderr)
	assert.Check(t, is.Len(readResults(t, filepath.Join(dir, "results")), 0))
	for _, f := range []string{"written.toml", "layout"} {
		_, err := os.Stat(filepath.Join(dir, f))
		assert.Check(t, os.IsNotExist(err), "%s written", f)
	}
}

// TestFromBadInput: inputs that are not what their kind says exit 2 with
// one line naming the input.
func TestFromBadInput(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, file string
		args       []string
		want       string
	}{
		{"unknown kind", "", []string{"-from", "kaniko:in"}, `invalid value "kaniko:in" for flag -from: unknown kind "kaniko"`},
		{"auto ambiguous JSON", `{"image":"r.example/a:1"}`, []string{"-from", "auto:in"}, "-from auto:in: JSON, so buildx or jib, but has neither"},
		{"digest without -image", d, []string{"-from", "digest:in"}, "-from digest:in: a bare digest names no image: give -image REF"},
		{"refs fed a report", "[image]\ntags = [\"r.example/a:1\"]\ndigest = \"" + d + "\"\n", []string{"-from", "refs:in"}, "-from refs:in: line 1"},
		{"missing file", "", []string{"-from", "refs:in"}, "-from in: open in: no such file or directory"},
		{"lifecycle layout report without a layout", "[image]\ntags = [\"r.example/a:1\"]\n", []string{"-from", "report:in", "-offline"},
			"give -layout-dir (the lifecycle's, env CNB_LAYOUT_DIR) or -oci-layout naming that layout"},
		{"-primary names nothing", d, []string{"-from", "digest:in", "-image", "r.example/a:1", "-offline", "-primary", "r.example/b:1"},
			"-primary r.example/b:1: no image of -from digest:in has that reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workdir(t, "")
			if tc.file != "" {
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "in"), []byte(tc.file), 0o644))
			}
			res := run(t, dir, env(), append([]string{"-results-dir", "results"}, tc.args...)...)
			assert.Equal(t, res.code, 2, res.stderr)
			assert.Check(t, is.Contains(res.stderr, tc.want))
			assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.stderr), "\n"), 0), "one line: %q", res.stderr)
			assert.Check(t, is.Len(readResults(t, filepath.Join(dir, "results")), 0))
		})
	}
}
