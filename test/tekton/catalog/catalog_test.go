package catalog

import (
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

func catalogTasks(t *testing.T, objs []object) map[string]*v1.Task {
	t.Helper()
	tasks := map[string]*v1.Task{}
	for _, o := range objs {
		if task, ok := o.obj.(*v1.Task); ok && isResourceFile(o.file) {
			task.SetDefaults(webhookContext(t))
			tasks[task.Name] = task
		}
	}
	return tasks
}

func catalogPipelines(t *testing.T, objs []object) map[string]*v1.Pipeline {
	t.Helper()
	ps := map[string]*v1.Pipeline{}
	for _, o := range objs {
		if p, ok := o.obj.(*v1.Pipeline); ok && isResourceFile(o.file) {
			p.SetDefaults(webhookContext(t))
			ps[p.Name] = p
		}
	}
	return ps
}
