package catalog

import (
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestTaskStepsRunLocally runs the steps of export-image, then of
// report-to-results, then the StepAction, the way Tekton would run them with
// default params (but one, see below): args expanded by the same rules, the source workspace a
// temporary directory holding an OCI layout at the default SOURCE_SUBPATH,
// the unbound dockerconfig workspace an empty DOCKER_CONFIG, and the results
// directory /tekton/results and the termination message /tekton/termination
// redirected to temporary paths (the only rewrites). The registry is go-containerregistry's, in process, on
// 127.0.0.1 (plain HTTP, which go-containerregistry uses for loopback hosts
// without being told). It proves the YAML and the commands agree: every flag
// at its default value is accepted and the results are right.
func TestTaskStepsRunLocally(t *testing.T) {
	root := repoRoot(t)
	objs := decodeAll(t, root)
	tasks := catalogTasks(t, objs)
	action := stepAction(t, root)
	bins := map[string]string{
		"export-step":    buildCommand(t, root, "export-step"),
		"report2results": buildCommand(t, root, "report2results"),
	}

	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	assert.NilError(t, err)
	image := u.Host + "/team/app:latest"
	extra := u.Host + "/team/app:0.1"

	ws := t.TempDir()
	img, err := random.Image(512, 2)
	assert.NilError(t, err)
	p, err := layout.Write(filepath.Join(ws, "image"), empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img))

	runSteps := func(t *testing.T, task *v1.Task, e expansion) string {
		t.Helper()
		results, termination := t.TempDir(), filepath.Join(t.TempDir(), "termination")
		for _, s := range task.Spec.Steps {
			cmd := strings.TrimPrefix(s.Image, "ko://"+modulePath+"/cmd/")
			args := stepArgs(t, s.Args, task.Spec.Params, e)
			for i, a := range args {
				a = strings.Replace(a, taskResultsDir, results, 1)
				args[i] = strings.Replace(a, "/tekton/termination", termination, 1)
			}
			c := exec.Command(bins[cmd], args...)
			c.Env = append(os.Environ(), "DOCKER_CONFIG=") // unbound optional workspace
			out, err := c.CombinedOutput()
			assert.NilError(t, err, "step %s: %s %q: %s", s.Name, cmd, args, out)
		}
		return results
	}
	readResult := func(t *testing.T, dir, n string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, n))
		assert.NilError(t, err, "result %s", n)
		return string(b)
	}

	ref, err := name.ParseReference(image)
	assert.NilError(t, err)

	t.Run("export-image", func(t *testing.T) {
		results := runSteps(t, tasks["export-image"], expansion{
			// INSECURE_REGISTRIES stays at its empty default, so the step
			// runs with -insecure-registry="" as a stock TaskRun does.
			params:     map[string]string{"IMAGE": image},
			arrays:     map[string][]string{"EXTRA_TAGS": {extra}},
			workspaces: map[string]string{"source": ws, "dockerconfig": ""},
		})
		desc, err := remote.Head(ref)
		assert.NilError(t, err)
		assert.Equal(t, readResult(t, results, "IMAGE_DIGEST"), desc.Digest.String())
		assert.Equal(t, readResult(t, results, "IMAGE_URL"), image)
		assert.Equal(t, readResult(t, results, "IMAGES"), image+"@"+desc.Digest.String()+"\n"+extra+"@"+desc.Digest.String())
		_, err = os.Stat(filepath.Join(ws, "report.toml"))
		assert.NilError(t, err, "REPORT_SUBPATH default")
	})

	t.Run("report-to-results", func(t *testing.T) {
		results := runSteps(t, tasks["report-to-results"], expansion{
			workspaces: map[string]string{"source": ws, "dockerconfig": ""},
		})
		desc, err := remote.Head(ref)
		assert.NilError(t, err)
		assert.Equal(t, readResult(t, results, "IMAGE_DIGEST"), desc.Digest.String())
		index, err := os.ReadFile(filepath.Join(ws, "layout", "index.json"))
		assert.NilError(t, err, "LAYOUT_SUBPATH default")
		assert.Check(t, is.Contains(string(index), desc.Digest.String()))
		assert.Check(t, is.Contains(string(index), `"org.opencontainers.image.ref.name"`))
	})

	t.Run("report-to-results StepAction", func(t *testing.T) {
		results := t.TempDir()
		args := stepArgs(t, action.Args, action.Params, expansion{params: map[string]string{
			"REPORT":      filepath.Join(ws, "report.toml"),
			"RESULTS_DIR": results,
			"PREFIX":      "APP",
		}})
		out, err := exec.Command(bins["report2results"], args...).CombinedOutput()
		assert.NilError(t, err, "%q: %s", args, out)
		desc, err := remote.Head(ref)
		assert.NilError(t, err)
		assert.Equal(t, readResult(t, results, "APP_IMAGE_DIGEST"), desc.Digest.String())
		assert.Equal(t, readResult(t, results, "APP_IMAGE_URL"), image)
	})
}
