package podrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/test/names"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
