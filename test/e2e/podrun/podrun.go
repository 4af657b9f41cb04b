// Package podrun runs a Tekton TaskRun with no Kubernetes cluster.
//
// Tekton's own code decides what runs: the Task (or the TaskRun's embedded
// spec) and its StepActions are resolved with the controller's
// pkg/reconciler/taskrun/resources, params are checked with
// taskrun.ValidateResolvedTask, variables are substituted and workspaces
// applied in the order the reconciler applies them, and pkg/pod.Builder makes
// the Pod. The Pod then runs on a Docker engine the way a kubelet would run
// it (see kubelet.go), and pkg/pod.MakeTaskRunStatus turns the finished Pod
// (container exit codes and termination messages) back into the TaskRun's
// status: results, steps and the Succeeded condition.
package podrun

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	"github.com/tektoncd/pipeline/pkg/pod"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/workspace"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"knative.dev/pkg/apis"
)

// Namespace is where every object of a Runner lives.
const Namespace = "default"

// Runner holds what the Tekton controller and a kubelet would read from the
// API server (Tasks, StepActions, Secrets, ConfigMaps, the default
// ServiceAccount, in fake clientsets), the images Tekton's controller is
// configured with, the host directories standing for PersistentVolumeClaims,
// and the Docker engine the Pods run on.
type Runner struct {
	Images pipeline.Images
	Kube   *kubefake.Clientset
	Tekton *tektonfake.Clientset
	// Claims maps a PersistentVolumeClaim name to the host directory that
	// stands for the volume (shared by every Pod that mounts it).
	Claims map[string]string
	// Defaults, FeatureFlags: Tekton's configuration (config-defaults,
	// feature-flags); nil means the package defaults, as a stock install.
	Defaults     *config.Defaults
	FeatureFlags *config.FeatureFlags

	docker *client.Client
	cache  pod.EntrypointCache
	seq    int
}

// New returns a Runner for images, holding objects: *v1.Task and
// *v1beta1.StepAction go to the Tekton clientset, anything else (Secrets,
// ConfigMaps, ServiceAccounts) to the Kubernetes one, which also holds the
// "default" ServiceAccount unless objects has one.
func New(t testing.TB, images pipeline.Images, objects ...runtime.Object) *Runner {
	t.Helper()
	var kubeObjs, tektonObjs []runtime.Object
	hasDefaultSA := false
	for _, o := range objects {
		switch x := o.(type) {
		case *v1.Task, *v1beta1.StepAction, *v1.Pipeline:
			tektonObjs = append(tektonObjs, o)
		case *corev1.ServiceAccount:
			hasDefaultSA = hasDefaultSA || x.Name == config.DefaultServiceAccountValue
			kubeObjs = append(kubeObjs, o)
		default:
			kubeObjs = append(kubeObjs, o)
		}
	}
	if !hasDefaultSA {
		kubeObjs = append(kubeObjs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: config.DefaultServiceAccountValue, Namespace: Namespace}})
	}
	kube := kubefake.NewSimpleClientset(kubeObjs...)
	cache, err := pod.NewEntrypointCache(kube)
	if err != nil {
		t.Fatalf("podrun: entrypoint cache: %v", err)
	}
	docker, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("podrun: docker client: %v", err)
	}
	t.Cleanup(func() { _ = docker.Close() })
	return &Runner{
		Images: images,
		Kube:   kube,
		Tekton: tektonfake.NewSimpleClientset(tektonObjs...),
		Claims: map[string]string{},
		docker: docker,
		cache:  cache,
	}
}

// Context is ctx with Tekton's configuration (config.ToContext), as the
// controller's config store gives its reconcilers.
func (r *Runner) Context(ctx context.Context) context.Context {
	cfg := config.FromContextOrDefaults(context.Background())
	if r.Defaults != nil {
		cfg.Defaults = r.Defaults
	}
	if r.FeatureFlags != nil {
		cfg.FeatureFlags = r.FeatureFlags
	}
	return config.ToContext(ctx, cfg)
}

// Run is one finished TaskRun.
type Run struct {
	// TaskRun is the TaskRun with the status Tekton's code computed from
	// the finished Pod.
	TaskRun *v1.TaskRun
	// Pod is the Pod Tekton's builder made, with the status observed.
	Pod *corev1.Pod
	// Logs holds each container's stdout and stderr, by container name
	// (init containers included: "prepare", "place-scripts", "step-NAME").
	Logs map[string]string
	// Engine is how Docker ran each container, by container name.
	Engine map[string]EngineContainer
}

// Succeeded is the TaskRun's Succeeded condition (nil before it has one).
func (r *Run) Succeeded() *apis.Condition {
	return r.TaskRun.Status.GetCondition(apis.ConditionSucceeded)
}

// Results are the TaskRun's string results by name.
func (r *Run) Results() map[string]string {
	out := map[string]string{}
	for _, res := range r.TaskRun.Status.Results {
		out[res.Name] = res.Value.StringVal
	}
	return out
}

// AllLogs is every container's log, each headed by its name.
func (r *Run) AllLogs() string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(r.Logs)) {
		fmt.Fprintf(&b, "--- %s\n%s\n", name, r.Logs[name])
	}
	return b.String()
}

// Step is the TaskRun's state of step NAME (without "step-").
func (r *Run) Step(name string) *v1.StepState {
	for i, s := range r.TaskRun.Status.Steps {
		if s.Name == name {
			return &r.TaskRun.Status.Steps[i]
		}
	}
	return nil
}

// Run runs tr (referencing a Task in the Runner, or embedding its spec) to
// completion and returns it with its status. A TaskRun that Tekton would
// refuse before creating a Pod comes back failed, with the condition the
// controller sets, and no Pod. Infrastructure failures (Docker) fail t.
func (r *Runner) Run(ctx context.Context, t testing.TB, tr *v1.TaskRun) *Run {
	t.Helper()
	ctx = r.Context(ctx)
	tr = tr.DeepCopy()
	if tr.Namespace == "" {
		tr.Namespace = Namespace
	}
	tr.SetDefaults(ctx)
	run := &Run{TaskRun: tr, Logs: map[string]string{}}

	p, applied, err := r.pod(ctx, tr)
	if err != nil {
		tr.Status.MarkResourceFailed(v1.TaskRunReasonFailedValidation, err)
		return run
	}
	r.seq++
	p.Name = fmt.Sprintf("%s-%d", p.Name, r.seq)
	run.Pod = p

	start := time.Now()
	// As the reconciler's createPod, the Pod is created in the API server.
	if p, err = r.Kube.CoreV1().Pods(tr.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("podrun: create pod %s: %v", p.Name, err)
	}
	run.Pod = p
	k := &kubelet{docker: r.docker, kube: r.Kube, claims: r.Claims, running: func(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
		// No sidecars run here, so they are all ready: the reconciler
		// then calls UpdateReady, which sets the annotation.
		if err := pod.UpdateReady(ctx, r.Kube, *p); err != nil {
			return nil, err
		}
		return r.Kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	}}
	status, logs := k.runPod(ctx, t, p)
	p.Status = status
	run.Logs = logs
	run.Engine = k.engine
	t.Logf("podrun: %s ran in %s: phase %s", tr.Name, time.Since(start).Round(time.Millisecond), status.Phase)

	tr.Status.TaskSpec = applied
	trs, err := pod.MakeTaskRunStatus(ctx, zap.NewNop().Sugar(), *tr, p, r.Kube, applied)
	if err != nil {
		t.Fatalf("podrun: MakeTaskRunStatus for %s: %v", tr.Name, err)
	}
	tr.Status = trs
	return run
}

// Pod is the Pod Tekton would create for tr, without running it.
func (r *Runner) Pod(ctx context.Context, tr *v1.TaskRun) (*corev1.Pod, error) {
	ctx = r.Context(ctx)
	tr = tr.DeepCopy()
	if tr.Namespace == "" {
		tr.Namespace = Namespace
	}
	tr.SetDefaults(ctx)
	p, _, err := r.pod(ctx, tr)
	return p, err
}

// pod resolves, validates and substitutes tr's Task and builds its Pod; it
// also returns the spec the TaskRun's status records.
func (r *Runner) pod(ctx context.Context, tr *v1.TaskRun) (*corev1.Pod, *v1.TaskSpec, error) {
	_, rtr, err := r.prepare(ctx, tr)
	if err != nil {
		return nil, nil, err
	}
	return r.buildPod(ctx, tr, rtr)
}

// prepare resolves the Task and its StepActions and checks the params, as
// the reconciler's prepare does.
func (r *Runner) prepare(ctx context.Context, tr *v1.TaskRun) (*v1.TaskSpec, *resources.ResolvedTask, error) {
	getTask := resources.GetTaskFuncFromTaskRun(ctx, r.Kube, r.Tekton, nil, tr, nil)
	meta, ts, err := resources.GetTaskData(ctx, tr, getTask)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve the task of %s: %w", tr.Name, err)
	}
	steps, err := resources.GetStepActionsData(ctx, *ts, tr, r.Tekton, r.Kube, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve the StepActions of %s: %w", tr.Name, err)
	}
	ts.Steps = steps
	rtr := &resources.ResolvedTask{TaskName: meta.Name, TaskSpec: ts, Kind: resources.GetTaskKind(tr)}
	if err := taskrun.ValidateResolvedTask(ctx, tr.Spec.Params, &v1.Matrix{}, rtr); err != nil {
		return nil, nil, err
	}
	if err := workspace.ValidateBindings(ctx, ts.Workspaces, tr.Spec.Workspaces); err != nil {
		return nil, nil, err
	}
	return ts, rtr, nil
}

// buildPod substitutes params, contexts, results, workspaces and the
// credentials path in the order the reconciler does
// (applyParamsContextsResultsAndWorkspaces, then createPod), validates the
// result as createPod does and builds the Pod with pkg/pod.Builder.
// It returns the Pod and the spec the TaskRun's status records.
func (r *Runner) buildPod(ctx context.Context, tr *v1.TaskRun, rtr *resources.ResolvedTask) (*corev1.Pod, *v1.TaskSpec, error) {
	resources.ApplyParametersToWorkspaceBindings(rtr.TaskSpec, tr)
	vols := workspace.CreateVolumes(tr.Spec.Workspaces)

	ts := rtr.TaskSpec.DeepCopy()
	defaults := append([]v1.ParamSpec(nil), ts.Params...)
	ts = resources.ApplyParameters(ts, tr, defaults...)
	ts = resources.ApplyContexts(ts, rtr.TaskName, tr)
	ts = resources.ApplyResults(ts)
	ts = resources.ApplyArtifacts(ts)
	ts = resources.ApplyStepExitCodePath(ts)
	declared := map[string]bool{}
	for _, w := range ts.Workspaces {
		declared[w.Name] = true
	}
	for _, b := range tr.Spec.Workspaces {
		if !declared[b.Name] {
			ts.Workspaces = append(ts.Workspaces, v1.WorkspaceDeclaration{Name: b.Name})
		}
	}
	ts = resources.ApplyWorkspaces(ctx, ts, ts.Workspaces, tr.Spec.Workspaces, vols)

	applied := ts.DeepCopy()

	if err := v1.ValidateUsageOfDeclaredParameters(ctx, ts.Steps, ts.Params); err != nil {
		return nil, nil, err
	}
	if err := ts.Validate(ctx); err != nil {
		return nil, nil, err
	}
	ts, err := workspace.Apply(ctx, *ts, tr.Spec.Workspaces, vols)
	if err != nil {
		return nil, nil, err
	}
	ts = resources.ApplyCredentialsPath(ts, pipeline.CredsDir)

	b := pod.Builder{Images: r.Images, KubeClient: r.Kube, EntrypointCache: r.cache}
	p, err := b.Build(ctx, tr, *ts)
	if err != nil {
		return nil, nil, fmt.Errorf("translating TaskSpec to Pod: %w", err)
	}
	return p, applied, nil
}
