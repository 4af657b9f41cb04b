package podrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/test/names"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psa "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

var testImages = pipeline.Images{
	EntrypointImage:        "registry.test/tekton/entrypoint@sha256:" + strings.Repeat("1", 64),
	ShellImage:             "registry.test/tekton/busybox@sha256:" + strings.Repeat("2", 64),
	NopImage:               "registry.test/tekton/busybox@sha256:" + strings.Repeat("2", 64),
	SidecarLogResultsImage: "registry.test/tekton/busybox@sha256:" + strings.Repeat("2", 64),
	ShellImageWin:          "registry.test/tekton/busybox@sha256:" + strings.Repeat("2", 64),
	WorkingDirInitImage:    "registry.test/tekton/busybox@sha256:" + strings.Repeat("2", 64),
}

// TestExportImagePod pins the Pod Tekton's code builds for a TaskRun of
// export-image (the repository's YAML, ko:// images replaced): what the
// Docker side of podrun then runs. Names are seeded with Tekton's
// test/names. go test ./podrun -update rewrites the golden file.
func TestExportImagePod(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tasks", "export-image", "0.1", "export-image.yaml"))
	assert.NilError(t, err)
	data = []byte(strings.ReplaceAll(string(data), "ko://github.com/exportreport/exportreport/cmd/", "registry.test/exportreport/"))
	var task v1.Task
	assert.NilError(t, yaml.UnmarshalStrict(data, &task))
	task.Namespace = Namespace

	names.TestingSeed()
	r := New(t, testImages, &task)
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "export", Namespace: Namespace},
		Spec: v1.TaskRunSpec{
			TaskRef: &v1.TaskRef{Name: "export-image"},
			Params: v1.Params{
				{Name: "IMAGE", Value: *v1.NewStructuredValues("registry.test/team/app:latest")},
				{Name: "EXTRA_TAGS", Value: v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: []string{"registry.test/team/app:1.0"}}},
			},
			Workspaces: []v1.WorkspaceBinding{
				{Name: "source", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "source"}},
				{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: "dockerconfig"}},
			},
		},
	}
	p, err := r.Pod(context.Background(), tr)
	assert.NilError(t, err)
	out, err := yaml.Marshal(p)
	assert.NilError(t, err)
	golden.Assert(t, string(out), "export-image-pod.yaml")

	// What the runner relies on, said once more in words.
	assert.Equal(t, p.Spec.InitContainers[0].Name, "prepare")
	assert.Equal(t, p.Spec.Containers[0].Command[0], "/tekton/bin/entrypoint")
	assert.DeepEqual(t, p.Spec.Containers[1].Args[0:2], []string{"-wait_file", "/tekton/run/0/out"})
}

func TestRefusedBeforeAPod(t *testing.T) {
	r := New(t, testImages)
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: Namespace},
		Spec:       v1.TaskRunSpec{TaskRef: &v1.TaskRef{Name: "no-such-task"}},
	}
	_, err := r.Pod(context.Background(), tr)
	assert.ErrorContains(t, err, "no-such-task")
}

// TestTaskPodsAreRestricted: the Pods Tekton's code builds for each Task
// of the repository, and for the StepAction inside a user's Task whose own
// step is restricted, pass the restricted Pod Security profile as
// k8s.io/pod-security-admission/policy (the API server's code, v0.34.3)
// evaluates it, with Tekton's set-security-context feature flag on (what
// a restricted namespace needs for Tekton's own init containers). No
// Docker, no cluster: TestCluster checks the same with real admission.
func TestTaskPodsAreRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	assert.NilError(t, err)
	restricted := psa.LevelVersion{Level: psa.LevelRestricted, Version: psa.LatestVersion()}
	read := func(path string, obj any) {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", path))
		assert.NilError(t, err)
		data = []byte(strings.ReplaceAll(string(data), "ko://github.com/exportreport/exportreport/cmd/", "registry.test/exportreport/"))
		assert.NilError(t, yaml.UnmarshalStrict(data, obj))
	}
	var export, results v1.Task
	read("tasks/export-image/0.1/export-image.yaml", &export)
	read("tasks/report-to-results/0.1/report-to-results.yaml", &results)
	var action v1beta1.StepAction
	read("stepactions/report-to-results/0.1/report-to-results.yaml", &action)
	for _, o := range []*v1.Task{&export, &results} {
		o.Namespace = Namespace
	}
	action.Namespace = Namespace
	yes, no := true, false
	source := v1.WorkspaceBinding{Name: "source", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "source"}}
	for _, tr := range []*v1.TaskRun{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "export", Namespace: Namespace},
			Spec: v1.TaskRunSpec{TaskRef: &v1.TaskRef{Name: "export-image"}, Workspaces: []v1.WorkspaceBinding{source},
				Params: v1.Params{{Name: "IMAGE", Value: *v1.NewStructuredValues("registry.test/team/app:latest")}}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "results", Namespace: Namespace},
			Spec:       v1.TaskRunSpec{TaskRef: &v1.TaskRef{Name: "report-to-results"}, Workspaces: []v1.WorkspaceBinding{source}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "stepaction", Namespace: Namespace},
			Spec: v1.TaskRunSpec{TaskSpec: &v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}, {Name: "IMAGE_URL"}},
				Steps: []v1.Step{
					{Name: "build", Image: "registry.test/builder", Script: "true", SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot: &yes, AllowPrivilegeEscalation: &no,
						Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					}},
					{Name: "results", Ref: &v1.Ref{Name: "report-to-results"}},
				},
			}},
		},
	} {
		t.Run(tr.Name, func(t *testing.T) {
			r := New(t, testImages, &export, &results, &action)
			flags := config.DefaultFeatureFlags.DeepCopy()
			flags.SetSecurityContext = true
			r.FeatureFlags = flags
			p, err := r.Pod(context.Background(), tr)
			assert.NilError(t, err)
			res := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &p.ObjectMeta, &p.Spec))
			assert.Check(t, res.Allowed, "%s: %s", res.ForbiddenReason(), res.ForbiddenDetail())

			// Without the feature flag, Tekton's own init containers are
			// what the profile refuses, not the Task's steps.
			r.FeatureFlags = nil
			p, err = r.Pod(context.Background(), tr)
			assert.NilError(t, err)
			steps := p.DeepCopy()
			steps.Spec.InitContainers = nil
			res = policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &steps.ObjectMeta, &steps.Spec))
			assert.Check(t, res.Allowed, "steps alone: %s: %s", res.ForbiddenReason(), res.ForbiddenDetail())
		})
	}
}
