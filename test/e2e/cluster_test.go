//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/exportreport/exportreport/test/e2e/clusterrun"
)

// TestCatalogOnCluster is the cluster mode: with KUBECONFIG set (a cluster
// with Tekton installed) and KO_DOCKER_REPO (where the cluster pulls
// images from), it releases the step images with hack/release, applies the
// release, the Pipelines and each resource's tests/resources.yaml, runs
// every tests/run.yaml TaskRun and PipelineRun (the Tekton Catalog
// convention: a registry at localhost:5000 reachable from the pods) and
// checks that each succeeds and sets every result it declares. Not run in
// this repository's CI: no cluster is available there.
func TestCatalogOnCluster(t *testing.T) {
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("KUBECONFIG is not set: the cluster mode does not run (TestTasks runs the cases on the Docker engine)")
	}
	repo := os.Getenv("KO_DOCKER_REPO")
	if repo == "" {
		t.Fatal("KUBECONFIG is set: set KO_DOCKER_REPO to a repository the cluster pulls from")
	}
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "release.yaml")
	args := []string{filepath.Join(root, "hack", "release"), "-o", out}
	if os.Getenv("E2E_INSECURE_REGISTRY") != "" {
		args = append(args, "--insecure-registry")
	}
	icmd.RunCmd(icmd.Command("bash", args...), icmd.Dir(root),
		icmd.WithEnv(append(os.Environ(), "KO="+koBinary(t))...)).Assert(t, icmd.Success)
	release, err := os.ReadFile(out)
	assert.NilError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cluster := clusterrun.New(ctx, t, kubeconfig)
	cluster.Apply(ctx, t, decodeObjects(t, release)...)
	pipelines, err := filepath.Glob(filepath.Join(root, "pipelines", "*", "*", "*.yaml"))
	assert.NilError(t, err)
	for _, p := range pipelines {
		cluster.Apply(ctx, t, decodeObjects(t, readFile(t, p))...)
	}

	runs, err := filepath.Glob(filepath.Join(root, "*", "*", "*", "tests", "run.yaml"))
	assert.NilError(t, err)
	for _, run := range runs {
		rel, _ := filepath.Rel(root, run)
		t.Run(rel, func(t *testing.T) {
			if res := filepath.Join(filepath.Dir(run), "resources.yaml"); fileExists(res) {
				cluster.Apply(ctx, t, decodeObjects(t, readFile(t, res))...)
			}
			for _, o := range decodeObjects(t, readFile(t, run)) {
				switch x := o.(type) {
				case *v1.TaskRun:
					got := cluster.RunTask(ctx, t, x)
					c := got.Status.GetCondition("Succeeded")
					assert.Assert(t, c != nil && c.IsTrue(), "%s: %s; logs: %v", got.Name, clusterrun.Describe(c), cluster.Logs(ctx, t, got))
					checkResults(t, got.Name, got.Status.TaskSpec, got.Status.Results)
				case *v1.PipelineRun:
					got, trs := cluster.RunPipeline(ctx, t, x)
					c := got.Status.GetCondition("Succeeded")
					assert.Assert(t, c != nil && c.IsTrue(), "%s: %s", got.Name, clusterrun.Describe(c))
					for _, tr := range trs {
						checkResults(t, tr.Name, tr.Status.TaskSpec, tr.Status.Results)
					}
				default:
					cluster.Apply(ctx, t, o)
				}
			}
		})
	}
}

// checkResults fails t unless every result spec declares has a value.
func checkResults(t *testing.T, run string, spec *v1.TaskSpec, results []v1.TaskRunResult) {
	t.Helper()
	if spec == nil {
		return
	}
	got := map[string]bool{}
	for _, r := range results {
		got[r.Name] = r.Value.StringVal != "" || len(r.Value.ArrayVal) > 0 || len(r.Value.ObjectVal) > 0
	}
	for _, r := range spec.Results {
		assert.Check(t, got[r.Name], "%s: result %s not set", run, r.Name)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	assert.NilError(t, err)
	return data
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// decodeObjects decodes every document of a YAML stream strictly into its
// Tekton or Kubernetes type.
func decodeObjects(t *testing.T, stream []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct{ Kind string }
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &meta))
		var obj runtime.Object
		switch meta.Kind {
		case "":
			continue
		case "Task":
			obj = &v1.Task{}
		case "Pipeline":
			obj = &v1.Pipeline{}
		case "TaskRun":
			obj = &v1.TaskRun{}
		case "PipelineRun":
			obj = &v1.PipelineRun{}
		case "StepAction":
			obj = stepActionObject()
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		default:
			t.Fatalf("unexpected kind %s", meta.Kind)
		}
		assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), obj))
		out = append(out, obj)
	}
	return out
}
