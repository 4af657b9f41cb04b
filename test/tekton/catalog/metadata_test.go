package catalog

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	versionLabel         = "app.kubernetes.io/version"
	minVersionAnnotation = "tekton.dev/pipelines.minVersion"
)

// catalogAnnotations must each be present and non-empty on a Catalog resource.
var catalogAnnotations = []string{
	minVersionAnnotation,
	"tekton.dev/categories",
	"tekton.dev/tags",
	"tekton.dev/displayName",
	"tekton.dev/platforms",
}

// catalogDir returns "tasks/NAME/VERSION" or "pipelines/NAME/VERSION" for a
// file under it.
func catalogDir(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 4 {
		return filepath.ToSlash(rel)
	}
	return strings.Join(parts[:3], "/")
}

// isResourceFile reports whether rel is the Catalog resource of its
// directory: tasks/NAME/VERSION/NAME.yaml.
func isResourceFile(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	return len(parts) == 4 && parts[3] == parts[1]+".yaml"
}

func meta(obj any) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *v1.Task:
		return &o.ObjectMeta
	case *v1.Pipeline:
		return &o.ObjectMeta
	case *v1.TaskRun:
		return &o.ObjectMeta
	case *v1.PipelineRun:
		return &o.ObjectMeta
	}
	if sa, ok := viewStepAction(obj); ok {
		return sa.Meta
	}
	return nil
}

// claimsByDir maps each Catalog directory to the minVersion its resource
// claims; tests/ files in the directory are held to the same claim. An
// example under docs/examples/ is its own directory and claim.
func claimsByDir(t *testing.T, objs []object) map[string]string {
	t.Helper()
	claims := map[string]string{}
	for _, o := range objs {
		if !isResourceFile(o.file) && !strings.HasPrefix(filepath.ToSlash(o.file), "docs/examples/") {
			continue
		}
		if m := meta(o.obj); m != nil && m.Annotations[minVersionAnnotation] != "" {
			claims[catalogDir(o.file)] = m.Annotations[minVersionAnnotation]
		}
	}
	return claims
}

var (
	platformFormat = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$`)
	versionDir     = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
)

// TestCatalogMetadata checks the Tekton Catalog form of every directory
// tasks/NAME/VERSION, stepactions/NAME/VERSION and pipelines/NAME/VERSION: NAME.yaml holds one
// resource named NAME of the right kind, labelled with VERSION and carrying
// every Catalog annotation; README.md documents every param, result and
// workspace and shows a usage example; tests/run.yaml exists.
func TestCatalogMetadata(t *testing.T) {
	root := repoRoot(t)
	var dirs []string
	for _, top := range []string{"tasks", "stepactions", "pipelines"} {
		matches, err := filepath.Glob(filepath.Join(root, top, "*", "*"))
		assert.NilError(t, err)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.IsDir() {
				rel, _ := filepath.Rel(root, m)
				dirs = append(dirs, filepath.ToSlash(rel))
			}
		}
	}
	assert.Assert(t, len(dirs) >= 6, "expected at least export-image, report-to-results (Task and StepAction), report2results (the StepAction's deprecated alias), build-export-consume, buildpacks-report; got %v", dirs)

	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			parts := strings.Split(dir, "/")
			top, name, version := parts[0], parts[1], parts[2]
			assert.Assert(t, versionDir.MatchString(version), "%s: version directory %q is not MAJOR.MINOR", dir, version)

			file := filepath.Join(dir, name+".yaml")
			objs, err := decodeFile(root, file)
			assert.NilError(t, err)
			assert.Equal(t, len(objs), 1, "%s: want exactly one resource", file)
			o := objs[0]
			switch top {
			case "tasks":
				// A StepAction here only as a deprecated alias kept for a release.
				assert.Assert(t, o.kind == "Task" || o.kind == "StepAction", "%s: kind %s, want Task or StepAction", file, o.kind)
			case "stepactions":
				assert.Equal(t, o.kind, "StepAction", "%s", file)
			case "pipelines":
				assert.Equal(t, o.kind, "Pipeline", "%s", file)
			}
			m := meta(o.obj)
			assert.Equal(t, m.Name, name, "%s: metadata.name must be the directory name", file)
			assert.Equal(t, m.Labels[versionLabel], version, "%s: label %s", file, versionLabel)
			for _, a := range catalogAnnotations {
				assert.Assert(t, strings.TrimSpace(m.Annotations[a]) != "", "%s: annotation %s missing or empty", file, a)
			}
			_, err = parseVersion(m.Annotations[minVersionAnnotation])
			assert.NilError(t, err, "%s: %s", file, minVersionAnnotation)
			for _, p := range strings.Split(m.Annotations["tekton.dev/platforms"], ",") {
				assert.Assert(t, platformFormat.MatchString(strings.TrimSpace(p)), "%s: platform %q is not OS/ARCH", file, p)
			}

			readme, err := os.ReadFile(filepath.Join(root, dir, "README.md"))
			assert.NilError(t, err, "%s: README.md", dir)
			text := string(readme)
			for _, heading := range []string{"## Parameters", "## Usage"} {
				assert.Assert(t, is.Contains(text, heading), "%s/README.md: no %q section", dir, heading)
			}
			params, results, workspaces := interfaceOf(o.obj)
			if len(results) > 0 {
				assert.Assert(t, is.Contains(text, "## Results"), "%s/README.md: no Results section", dir)
			}
			if len(workspaces) > 0 {
				assert.Assert(t, is.Contains(text, "## Workspaces"), "%s/README.md: no Workspaces section", dir)
			}
			for _, n := range append(append(params, results...), workspaces...) {
				assert.Assert(t, is.Contains(text, "`"+n+"`"), "%s/README.md: `%s` is not documented", dir, n)
			}
			assert.Assert(t, is.Contains(text, "```yaml"), "%s/README.md: no YAML usage example", dir)

			_, err = os.Stat(filepath.Join(root, dir, "tests", "run.yaml"))
			assert.NilError(t, err, "%s: tests/run.yaml", dir)
		})
	}
}

// interfaceOf returns the names of the params, results and workspaces a
// resource declares.
func interfaceOf(obj any) (params, results, workspaces []string) {
	switch o := obj.(type) {
	case *v1.Task:
		for _, p := range o.Spec.Params {
			params = append(params, p.Name)
		}
		for _, r := range o.Spec.Results {
			results = append(results, r.Name)
		}
		for _, w := range o.Spec.Workspaces {
			workspaces = append(workspaces, w.Name)
		}
	case *v1.Pipeline:
		for _, p := range o.Spec.Params {
			params = append(params, p.Name)
		}
		for _, r := range o.Spec.Results {
			results = append(results, r.Name)
		}
		for _, w := range o.Spec.Workspaces {
			workspaces = append(workspaces, w.Name)
		}
	default:
		if sa, ok := viewStepAction(obj); ok {
			for _, p := range sa.Params {
				params = append(params, p.Name)
			}
			results = sa.Results
		}
	}
	return params, results, workspaces
}

var pipelineRequire = regexp.MustCompile(`(?m)^\s*github\.com/tektoncd/pipeline (v[0-9]+\.[0-9]+\.[0-9]+)\s*$`)

// TestEveryClaimIsTested checks that each minVersion a Catalog resource
// claims has a mod file here, go.tekton-vX.Y.Z.mod, that links exactly that
// Tekton, so `go test -modfile=go.tekton-vX.Y.Z.mod` (hack/test-tekton runs
// every one) validates the files at the version they claim; and that go.mod
// links a Tekton at least as new as every claim.
func TestEveryClaimIsTested(t *testing.T) {
	root := repoRoot(t)
	claims := map[string][]string{}
	for dir, v := range claimsByDir(t, decodeAll(t, root)) {
		claims["v"+strings.TrimPrefix(v, "v")] = append(claims["v"+strings.TrimPrefix(v, "v")], dir)
	}
	newestMod, err := os.ReadFile("go.mod")
	assert.NilError(t, err)
	m := pipelineRequire.FindSubmatch(newestMod)
	assert.Assert(t, m != nil, "go.mod does not require github.com/tektoncd/pipeline")
	newest, err := parseVersion(string(m[1]))
	assert.NilError(t, err)
	for v, dirs := range claims {
		cv, err := parseVersion(v)
		assert.NilError(t, err)
		assert.Assert(t, compareVersions(cv, newest) <= 0, "%v claim %s, newer than go.mod's %s", dirs, v, m[1])
		if compareVersions(cv, newest) == 0 {
			continue
		}
		file := "go.tekton-" + v + ".mod"
		data, err := os.ReadFile(file)
		assert.NilError(t, err, "%v claim minVersion %s: no %s to test the claim", dirs, v, file)
		got := pipelineRequire.FindSubmatch(data)
		assert.Assert(t, got != nil && string(got[1]) == v, "%s must require github.com/tektoncd/pipeline %s exactly", file, v)
	}
	files, err := filepath.Glob("go.tekton-*.mod")
	assert.NilError(t, err)
	for _, f := range files {
		v := strings.TrimSuffix(strings.TrimPrefix(f, "go.tekton-"), ".mod")
		assert.Assert(t, claims[v] != nil, "%s tests %s, which no resource claims", f, v)
	}
}
