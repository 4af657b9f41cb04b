//go:build !tekton_pre_stepactions

package catalog

import (
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"gotest.tools/v3/assert"
)

// Where Tekton checks params. A Task or Pipeline is validated alone at
// admission; the params a TaskRun, PipelineRun or pipeline task passes to a
// Task it references are checked by the controller when it resolves the
// reference, before any pod exists (taskrun.ValidateResolvedTask,
// ValidateParamTypesMatching and ValidateRequiredParametersProvided): a
// missing required param or a string given for an array fails the run right
// there with a message naming the param. That is the earliest Tekton allows
// for referenced Tasks. Param enums would add value checks, but `enum` is
// an alpha feature (enable-param-enum) in every Tekton served, so the Tasks
// do not use it: a stock installation would refuse them. Values are
// checked by the commands themselves as their first act (exit code 2 with
// the flag named), before anything is pushed.

func resolved(task *v1.Task) *resources.ResolvedTask {
	return &resources.ResolvedTask{TaskName: task.Name, Kind: v1.NamespacedTaskKind, TaskSpec: &task.Spec}
}

// TestBadParamsAreRefusedBeforeRun feeds export-image params a user may get
// wrong to the controller's own check and asserts the error names the param.
func TestBadParamsAreRefusedBeforeRun(t *testing.T) {
	root := repoRoot(t)
	tasks := catalogTasks(t, decodeAll(t, root))
	exportImage := tasks["export-image"]
	assert.Assert(t, exportImage != nil, "no export-image Task")
	str := func(s string) v1.ParamValue { return *v1.NewStructuredValues(s) }
	arr := func(s ...string) v1.ParamValue { return v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: s} }

	tests := []struct {
		name   string
		params v1.Params
		want   string
	}{
		{name: "valid", params: v1.Params{{Name: "IMAGE", Value: str("r.example/a:1")}, {Name: "EXTRA_TAGS", Value: arr("r.example/a:2")}}},
		{name: "IMAGE missing", params: v1.Params{{Name: "PLATFORM", Value: str("linux/amd64")}}, want: "IMAGE"},
		{name: "EXTRA_TAGS as a string", params: v1.Params{{Name: "IMAGE", Value: str("r.example/a:1")}, {Name: "EXTRA_TAGS", Value: str("r.example/a:2,r.example/a:3")}}, want: "EXTRA_TAGS"},
		{name: "PLATFORM as an array", params: v1.Params{{Name: "IMAGE", Value: str("r.example/a:1")}, {Name: "PLATFORM", Value: arr("linux/amd64", "linux/arm64")}}, want: "PLATFORM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := taskrun.ValidateResolvedTask(webhookContext(t), tc.params, &v1.Matrix{}, resolved(exportImage))
			if tc.want == "" {
				assert.NilError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestRunsPassParamsTheTasksAccept applies the same controller checks to
// every TaskRun, PipelineRun and pipeline task under tasks/ and pipelines/
// that references one of our Tasks or Pipelines by name, so the examples
// and tests/run.yaml files are known to pass them.
func TestRunsPassParamsTheTasksAccept(t *testing.T) {
	root := repoRoot(t)
	objs := decodeAll(t, root)
	tasks := catalogTasks(t, objs)
	pipelines := catalogPipelines(t, objs)
	checked := 0
	checkPipelineTasks := func(where string, spec *v1.PipelineSpec) {
		for _, pt := range append(append([]v1.PipelineTask{}, spec.Tasks...), spec.Finally...) {
			if pt.TaskRef == nil || pt.TaskRef.Name == "" {
				continue
			}
			task, ok := tasks[pt.TaskRef.Name]
			if !ok {
				t.Errorf("%s task %s: references Task %q, which is not under tasks/", where, pt.Name, pt.TaskRef.Name)
				continue
			}
			if err := taskrun.ValidateResolvedTask(webhookContext(t), pt.Params, &v1.Matrix{}, resolved(task)); err != nil {
				t.Errorf("%s task %s: %v", where, pt.Name, err)
			}
			checked++
		}
	}
	for _, o := range objs {
		switch x := o.obj.(type) {
		case *v1.TaskRun:
			x.SetDefaults(webhookContext(t))
			if x.Spec.TaskRef == nil || x.Spec.TaskRef.Name == "" {
				continue
			}
			task, ok := tasks[x.Spec.TaskRef.Name]
			if !ok {
				t.Errorf("%s: references Task %q, which is not under tasks/", o, x.Spec.TaskRef.Name)
				continue
			}
			if err := taskrun.ValidateResolvedTask(webhookContext(t), x.Spec.Params, &v1.Matrix{}, resolved(task)); err != nil {
				t.Errorf("%s: %v", o, err)
			}
			checked++
		case *v1.Pipeline:
			checkPipelineTasks(o.String(), &x.Spec)
		case *v1.PipelineRun:
			x.SetDefaults(webhookContext(t))
			if x.Spec.PipelineSpec != nil {
				checkPipelineTasks(o.String(), x.Spec.PipelineSpec)
				continue
			}
			if x.Spec.PipelineRef == nil || x.Spec.PipelineRef.Name == "" {
				continue
			}
			p, ok := pipelines[x.Spec.PipelineRef.Name]
			if !ok {
				t.Errorf("%s: references Pipeline %q, which is not under pipelines/", o, x.Spec.PipelineRef.Name)
				continue
			}
			if err := prresources.ValidateRequiredParametersProvided(&p.Spec.Params, &x.Spec.Params); err != nil {
				t.Errorf("%s: %v", o, err)
			}
			if err := prresources.ValidateParamTypesMatching(&p.Spec, x); err != nil {
				t.Errorf("%s: %v", o, err)
			}
			checked++
		}
	}
	assert.Assert(t, checked >= 4, "only %d references checked; every Catalog directory's tests/run.yaml should reference its resource", checked)
}
