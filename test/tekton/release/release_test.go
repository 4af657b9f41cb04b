// Package release runs hack/release (ko resolve) against the real
// Distribution registry and checks the release YAML it writes.
package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/exportreport/exportreport/test/distribution"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"sigs.k8s.io/yaml"
)

const (
	koVersion = "v0.19.1"
	// sourceDateEpoch is 2023-11-14T22:13:20Z; the images must say so.
	sourceDateEpoch = "1700000000"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	assert.NilError(t, err)
	return root
}

// koBinary returns ko: $KO, or ko v0.19.1 installed with go install into
// the same cache directory hack/release uses. Without CI, a ko that cannot
// be installed skips the test loudly; under CI it fails.
func koBinary(t *testing.T) string {
	t.Helper()
	if ko := os.Getenv("KO"); ko != "" {
		return ko
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		assert.NilError(t, err)
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "exportreport", "ko-"+koVersion)
	ko := filepath.Join(bin, "ko")
	if _, err := os.Stat(ko); err == nil {
		return ko
	}
	cmd := exec.Command("go", "install", "github.com/google/ko@"+koVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		distribution.Unavailable(t, "ko %s cannot be installed with go install: %v: %s", koVersion, err, lastLines(out, 5))
	}
	return ko
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// release runs hack/release and returns the release YAML and bundles.txt.
func release(t *testing.T, root, ko, repo, base string) (yamlData, bundles []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "release.yaml")
	cmd := exec.Command("bash", filepath.Join(root, "hack", "release"), "-o", out, "--insecure-registry")
	cmd.Dir = t.TempDir() // the script must not depend on the caller's directory
	cmd.Env = append(os.Environ(),
		"KO="+ko,
		"KO_DOCKER_REPO="+repo,
		"KO_DEFAULTBASEIMAGE="+base,
		"SOURCE_DATE_EPOCH="+sourceDateEpoch,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	assert.NilError(t, err, "hack/release: %s", lastLines(stderr.Bytes(), 20))
	t.Logf("hack/release took %s", time.Since(start).Round(time.Second))
	data, err := os.ReadFile(out)
	assert.NilError(t, err)
	bundles, err = os.ReadFile(filepath.Join(filepath.Dir(out), "bundles.txt"))
	assert.NilError(t, err)
	return data, bundles
}

// images returns every "image" value in every document of a YAML stream,
// and the kinds of the documents.
func images(t *testing.T, stream []byte) (imgs, kinds []string) {
	t.Helper()
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj map[string]any
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &obj))
		if obj == nil {
			continue
		}
		kind, _ := obj["kind"].(string)
		kinds = append(kinds, kind)
		walk(obj, func(key string, v any) {
			if s, ok := v.(string); ok && key == "image" {
				imgs = append(imgs, s)
			}
		})
	}
	return imgs, kinds
}

func walk(v any, f func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			f(k, e)
			walk(e, f)
		}
	case []any:
		for _, e := range x {
			walk(e, f)
		}
	}
}

// TestReleaseIsPinnedByDigest builds the release against the real
// Distribution registry (plain HTTP on 127.0.0.1) with a locally made
// two-platform base, and checks that every image in it is pinned by digest,
// exists in the registry for linux/amd64 and linux/arm64, runs as 65532,
// carries SOURCE_DATE_EPOCH as its created time, and that a second release
// gives the same digests (reproducible).
func TestReleaseIsPinnedByDigest(t *testing.T) {
	root := repoRoot(t)
	ko := koBinary(t)
	distribution.RequireTool(t, "docker-registry")
	reg := distribution.Start(t)

	baseCmd := exec.Command("go", "run", "./hack/ko-base", "-insecure", reg.Host()+"/ko-base:test")
	baseCmd.Dir = root
	var stderr bytes.Buffer
	baseCmd.Stderr = &stderr
	baseOut, err := baseCmd.Output()
	assert.NilError(t, err, "hack/ko-base: %s", stderr.String())
	base := strings.TrimSpace(string(baseOut))
	assert.Assert(t, is.Contains(base, "@sha256:"))

	repo := reg.Host() + "/exportreport"
	first, bundles := release(t, root, ko, repo, base)
	imgs, kinds := images(t, first)
	sort.Strings(kinds)
	// Two StepActions: report-to-results and its deprecated alias report2results.
	assert.DeepEqual(t, kinds, []string{"Pipeline", "Pipeline", "StepAction", "StepAction", "Task", "Task"})
	assert.Assert(t, !bytes.Contains(first, []byte("ko://")), "unresolved ko:// left:\n%s", first)
	assert.Assert(t, len(imgs) >= 4, "expected the images of export-image (2), report-to-results and the StepAction, got %v", imgs)

	want := map[string]bool{"export-step": false, "report2results": false}
	for _, img := range imgs {
		if strings.HasPrefix(img, "$(params.") {
			continue // a Pipeline's third-party image: the user's param
		}
		d, err := name.NewDigest(img, name.Insecure)
		assert.NilError(t, err, "image %q is not pinned by digest", img)
		assert.Assert(t, strings.HasPrefix(d.Context().Name(), repo+"/"), "image %s is not in %s", img, repo)
		want[strings.TrimPrefix(d.Context().Name(), repo+"/")] = true
		checkIndex(t, d, "/ko-app/"+strings.TrimPrefix(d.Context().Name(), repo+"/"), reg.RemoteOptions())
	}
	for cmd, seen := range want {
		assert.Assert(t, seen, "no image for cmd/%s in the release", cmd)
	}

	checkBundles(t, first, bundles, repo)
	checkPipelineImageParams(t, first)

	second, bundlesAgain := release(t, root, ko, repo, base)
	again, _ := images(t, second)
	assert.DeepEqual(t, again, imgs)
	assert.Equal(t, string(bundlesAgain), string(bundles), "the bundles of the same release differ")
}

// checkPipelineImageParams: a Pipeline names a third-party image only
// through a param (hack/release lets "image: $(params.X)" through), so
// that param's default, when it has one, must be pinned by digest too.
func checkPipelineImageParams(t *testing.T, release []byte) {
	t.Helper()
	ref := regexp.MustCompile(`^\$\(params\.([A-Za-z0-9_-]+)\)$`)
	checked := 0
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(release), -1) {
		var obj struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     struct {
				Params []struct {
					Name    string
					Default any
				}
			}
		}
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &obj))
		if obj.Kind != "Pipeline" {
			continue
		}
		var tree any
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &tree))
		imageParams := map[string]bool{}
		walk(tree, func(key string, v any) {
			if s, ok := v.(string); ok && key == "image" {
				if m := ref.FindStringSubmatch(s); m != nil {
					imageParams[m[1]] = true
				}
			}
		})
		// A pipeline task's param passing a Pipeline param on under the
		// same name (CONSUMER_IMAGE: $(params.CONSUMER_IMAGE)) is the
		// Pipeline's param.
		for _, p := range obj.Spec.Params {
			def, ok := p.Default.(string)
			if !imageParams[p.Name] || !ok {
				continue
			}
			_, err := name.NewDigest(def)
			assert.Check(t, err == nil, "Pipeline %s: param %s defaults to %q, not pinned by digest", obj.Metadata.Name, p.Name, def)
			checked++
		}
	}
	assert.Assert(t, checked >= 3, "expected the image params of both Pipelines, checked %d", checked)
}

// checkBundles resolves every bundle hack/release listed with Tekton's own
// bundles resolver code (bundle.GetEntry, what the resolver runs for
// `taskRef: {resolver: bundles}`) against the registry, and checks that it
// holds exactly the release's resource, pinned by digest, in repo/bundles.
func checkBundles(t *testing.T, release, bundles []byte, repo string) {
	t.Helper()
	want := map[string]map[string]any{} // kind/name -> object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(release), -1) {
		var obj map[string]any
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &obj))
		if obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		want[strings.ToLower(obj["kind"].(string))+"/"+meta["name"].(string)] = obj
	}
	lines := strings.Split(strings.TrimSpace(string(bundles)), "\n")
	assert.Equal(t, len(lines), len(want), "bundles.txt:\n%s", bundles)
	for _, line := range lines {
		f := strings.Fields(line)
		assert.Assert(t, is.Len(f, 2), "bundles.txt line %q", line)
		kindName, ref := f[0], f[1]
		d, err := name.NewDigest(ref, name.Insecure)
		assert.NilError(t, err, "bundle %q is not pinned by digest", ref)
		kind, entry, _ := strings.Cut(kindName, "/")
		assert.Equal(t, d.Context().Name(), repo+"/bundles/"+entry)
		res, err := bundle.GetEntry(context.Background(), authn.DefaultKeychain, bundle.RequestOptions{
			Bundle: ref, EntryName: entry, Kind: kind,
		})
		assert.NilError(t, err, "Tekton's bundles resolver on %s", ref)
		var got map[string]any
		assert.NilError(t, yaml.Unmarshal(res.Data(), &got))
		assert.DeepEqual(t, got, want[kindName])
		assert.Equal(t, res.RefSource().Digest["sha256"], d.DigestStr()[len("sha256:"):])
	}
}

// checkIndex asserts d is an index in the registry with linux/amd64 and
// linux/arm64 images that run as 65532, start entrypoint and were created at
// SOURCE_DATE_EPOCH.
func checkIndex(t *testing.T, d name.Digest, entrypoint string, opts []remote.Option) {
	t.Helper()
	idx, err := remote.Index(d, opts...)
	assert.NilError(t, err, "%s is not an index in the registry", d)
	m, err := idx.IndexManifest()
	assert.NilError(t, err)
	var platforms []string
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			continue
		}
		platforms = append(platforms, desc.Platform.OS+"/"+desc.Platform.Architecture)
		img, err := idx.Image(desc.Digest)
		assert.NilError(t, err)
		cf, err := img.ConfigFile()
		assert.NilError(t, err)
		assert.Equal(t, cf.Config.User, "65532", "%s %s runs as %q", d, desc.Platform, cf.Config.User)
		assert.Equal(t, cf.Created.Time.UTC(), time.Unix(1700000000, 0).UTC(), "%s %s created", d, desc.Platform)
		assert.Equal(t, cf.OS+"/"+cf.Architecture, desc.Platform.OS+"/"+desc.Platform.Architecture)
		// The Tasks' command: must name the binary where ko puts it.
		assert.DeepEqual(t, cf.Config.Entrypoint, []string{entrypoint})
	}
	sort.Strings(platforms)
	assert.DeepEqual(t, platforms, []string{"linux/amd64", "linux/arm64"})
}

// TestKoBaseImagePinnedByDigest: the release base in ko.yaml (and any
// override) names an image by digest, so that two releases of one commit
// build on the same base; a moving tag (cgr.dev/chainguard/static:latest)
// would make the reproducibility claim false. The bump procedure is in
// ko.yaml's comment.
func TestKoBaseImagePinnedByDigest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "ko.yaml"))
	assert.NilError(t, err)
	var cfg struct {
		DefaultBaseImage   string            `json:"defaultBaseImage"`
		BaseImageOverrides map[string]string `json:"baseImageOverrides"`
	}
	assert.NilError(t, yaml.Unmarshal(data, &cfg))
	pinned := regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)
	bases := map[string]string{"defaultBaseImage": cfg.DefaultBaseImage}
	for k, v := range cfg.BaseImageOverrides {
		bases["baseImageOverrides."+k] = v
	}
	for key, ref := range bases {
		assert.Check(t, pinned.MatchString(ref), "ko.yaml %s %q is not pinned by digest (…@sha256:<64 hex>)", key, ref)
		_, err := name.NewDigest(ref)
		assert.Check(t, err, "ko.yaml %s %q", key, ref)
	}
}
