package podrun

import (
	"context"
	"fmt"
	"path"
	"slices"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PipelineRun is one finished PipelineRun: the Run of each pipeline task
// that ran, by pipeline task name, in the order they ran.
type PipelineRun struct {
	Runs  map[string]*Run
	Order []string
}

// RunPipeline runs pr's pipeline tasks one at a time, in an order the
// PipelineRun controller could schedule them, each as a TaskRun through
// Run, and stops at the first that fails. Tekton's code decides what each
// TaskRun gets: pipelinerun/resources ApplyParameters, ApplyContexts and
// ApplyWorkspaces on the Pipeline spec, the dag package for the order
// (runAfter and result references), ResolveResultRef and ApplyTaskResults
// for $(tasks.X.results.Y). Simplified: the TaskRun is made here (name
// PIPELINERUN-TASK, the pipeline task's params, taskRef or taskSpec, the
// workspaces it binds with their subPath, the PipelineRun's service account
// and pod template); finally, when, matrix, retries, timeouts and
// finally tasks are not supported, and tasks never run in parallel.
func (r *Runner) RunPipeline(ctx context.Context, t testing.TB, pr *v1.PipelineRun) (*PipelineRun, error) {
	t.Helper()
	ctx = r.Context(ctx)
	pr = pr.DeepCopy()
	if pr.Namespace == "" {
		pr.Namespace = Namespace
	}
	pr.SetDefaults(ctx)
	pipelineName := pr.Name
	var ps *v1.PipelineSpec
	switch {
	case pr.Spec.PipelineSpec != nil:
		ps = pr.Spec.PipelineSpec.DeepCopy()
	case pr.Spec.PipelineRef != nil:
		p, err := r.Tekton.TektonV1().Pipelines(pr.Namespace).Get(ctx, pr.Spec.PipelineRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pipelinerun %s: %w", pr.Name, err)
		}
		p.SetDefaults(ctx)
		ps, pipelineName = p.Spec.DeepCopy(), p.Name
	default:
		return nil, fmt.Errorf("pipelinerun %s: no pipelineRef or pipelineSpec", pr.Name)
	}
	if len(ps.Finally) > 0 {
		return nil, fmt.Errorf("pipelinerun %s: finally tasks are not emulated", pr.Name)
	}
	resources.ApplyParametersToWorkspaceBindings(pr)
	ps, err := resources.ApplyParameters(ps, pr)
	if err != nil {
		return nil, fmt.Errorf("pipelinerun %s: %w", pr.Name, err)
	}
	ps = resources.ApplyContexts(ps, pipelineName, pr)
	ps = resources.ApplyWorkspaces(ps, pr)

	tasks := v1.PipelineTaskList(ps.Tasks)
	graph, err := dag.Build(tasks, tasks.Deps())
	if err != nil {
		return nil, fmt.Errorf("pipelinerun %s: %w", pr.Name, err)
	}
	var state resources.PipelineRunState
	for i := range ps.Tasks {
		state = append(state, &resources.ResolvedPipelineTask{PipelineTask: &ps.Tasks[i]})
	}
	byName := state.ToMap()
	out := &PipelineRun{Runs: map[string]*Run{}}
	for len(out.Order) < len(ps.Tasks) {
		candidates, err := dag.GetCandidateTasks(graph, out.Order...)
		if err != nil {
			return nil, fmt.Errorf("pipelinerun %s: %w", pr.Name, err)
		}
		if candidates.Len() == 0 {
			return nil, fmt.Errorf("pipelinerun %s: nothing can run after %v", pr.Name, out.Order)
		}
		for _, name := range slices.Sorted(slices.Values(candidates.List())) {
			rpt := byName[name]
			refs, _, err := resources.ResolveResultRef(state, rpt)
			if err != nil {
				return nil, fmt.Errorf("pipelinerun %s: task %s: %w", pr.Name, name, err)
			}
			resources.ApplyTaskResults(resources.PipelineRunState{rpt}, refs)
			run := r.Run(ctx, t, taskRunFor(pr, rpt.PipelineTask))
			rpt.TaskRuns = []*v1.TaskRun{run.TaskRun}
			out.Runs[name] = run
			out.Order = append(out.Order, name)
			if c := run.Succeeded(); c == nil || !c.IsTrue() {
				return out, nil
			}
		}
	}
	return out, nil
}

// taskRunFor is the TaskRun the PipelineRun controller would create for pt.
func taskRunFor(pr *v1.PipelineRun, pt *v1.PipelineTask) *v1.TaskRun {
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:      pr.Name + "-" + pt.Name,
			Namespace: pr.Namespace,
			Labels:    map[string]string{"tekton.dev/pipelineRun": pr.Name, "tekton.dev/pipelineTask": pt.Name},
		},
		Spec: v1.TaskRunSpec{
			Params:             pt.Params,
			TaskRef:            pt.TaskRef,
			ServiceAccountName: pr.Spec.TaskRunTemplate.ServiceAccountName,
			PodTemplate:        pr.Spec.TaskRunTemplate.PodTemplate,
		},
	}
	if pt.TaskSpec != nil {
		tr.Spec.TaskSpec = pt.TaskSpec.TaskSpec.DeepCopy()
	}
	for _, w := range pt.Workspaces {
		for _, b := range pr.Spec.Workspaces {
			if b.Name != w.Workspace {
				continue
			}
			b = *b.DeepCopy()
			b.Name = w.Name
			if w.SubPath != "" {
				b.SubPath = path.Join(b.SubPath, w.SubPath)
			}
			tr.Spec.Workspaces = append(tr.Spec.Workspaces, b)
		}
	}
	return tr
}
