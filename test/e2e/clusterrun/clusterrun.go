// Package clusterrun runs TaskRuns and PipelineRuns on a real Kubernetes
// cluster with Tekton installed (KUBECONFIG), for the e2e tests' cluster
// mode: it applies Tasks, StepActions, Pipelines, ConfigMaps and Secrets in
// a namespace, creates the runs, waits for their Succeeded condition and
// reads their status and step logs. It has never run against a cluster in
// this repository's CI (none is available there); it is compiled with the
// tests so it keeps up with Tekton's API.
package clusterrun

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"
)

// pollInterval is how often a run's status is read; runs take minutes on
// a cluster, and there is no informer here.
const pollInterval = 2 * time.Second

// Cluster is a namespace on the cluster KUBECONFIG names.
type Cluster struct {
	Kube      kubernetes.Interface
	Tekton    versioned.Interface
	Namespace string
}

// New connects to the cluster of kubeconfig and creates a namespace for
// the test, deleted when the test ends (with everything in it).
func New(ctx context.Context, t testing.TB, kubeconfig string) *Cluster {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("clusterrun: kubeconfig %s: %v", kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	tekton, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "exportreport-e2e-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return &Cluster{Kube: kube, Tekton: tekton, Namespace: ns.Name}
}

// Apply creates objs in the namespace (Tasks, StepActions, Pipelines,
// ConfigMaps, Secrets, ServiceAccounts).
func (c *Cluster) Apply(ctx context.Context, t testing.TB, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		var err error
		switch x := o.DeepCopyObject().(type) {
		case *v1.Task:
			x.Namespace = c.Namespace
			_, err = c.Tekton.TektonV1().Tasks(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *v1beta1.StepAction:
			x.Namespace = c.Namespace
			_, err = c.Tekton.TektonV1beta1().StepActions(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *v1.Pipeline:
			x.Namespace = c.Namespace
			_, err = c.Tekton.TektonV1().Pipelines(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			x.Namespace = c.Namespace
			_, err = c.Kube.CoreV1().ConfigMaps(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *corev1.Secret:
			x.Namespace = c.Namespace
			_, err = c.Kube.CoreV1().Secrets(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			x.Namespace = c.Namespace
			_, err = c.Kube.CoreV1().ServiceAccounts(c.Namespace).Create(ctx, x, metav1.CreateOptions{})
			if k8serrors.IsAlreadyExists(err) {
				_, err = c.Kube.CoreV1().ServiceAccounts(c.Namespace).Update(ctx, x, metav1.UpdateOptions{})
			}
		default:
			err = fmt.Errorf("kind %T is not applied by clusterrun", o)
		}
		if err != nil {
			t.Fatalf("clusterrun: apply: %v", err)
		}
	}
}

// RunTask creates tr and waits until it is done.
func (c *Cluster) RunTask(ctx context.Context, t testing.TB, tr *v1.TaskRun) *v1.TaskRun {
	t.Helper()
	tr = tr.DeepCopy()
	tr.Namespace = c.Namespace
	created, err := c.Tekton.TektonV1().TaskRuns(c.Namespace).Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: create TaskRun %s: %v", tr.Name, err)
	}
	for {
		got, err := c.Tekton.TektonV1().TaskRuns(c.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("clusterrun: TaskRun %s: %v", created.Name, err)
		}
		if done(got.Status.GetCondition(apis.ConditionSucceeded)) {
			return got
		}
		wait(ctx, t, "TaskRun "+created.Name)
	}
}

// RunPipeline creates pr, waits until it is done and returns it with the
// TaskRuns it made, by pipeline task name.
func (c *Cluster) RunPipeline(ctx context.Context, t testing.TB, pr *v1.PipelineRun) (*v1.PipelineRun, map[string]*v1.TaskRun) {
	t.Helper()
	pr = pr.DeepCopy()
	pr.Namespace = c.Namespace
	created, err := c.Tekton.TektonV1().PipelineRuns(c.Namespace).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: create PipelineRun %s: %v", pr.Name, err)
	}
	for {
		got, err := c.Tekton.TektonV1().PipelineRuns(c.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("clusterrun: PipelineRun %s: %v", created.Name, err)
		}
		if done(got.Status.GetCondition(apis.ConditionSucceeded)) {
			trs := map[string]*v1.TaskRun{}
			list, err := c.Tekton.TektonV1().TaskRuns(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + got.Name})
			if err != nil {
				t.Fatalf("clusterrun: TaskRuns of %s: %v", got.Name, err)
			}
			for i := range list.Items {
				trs[list.Items[i].Labels["tekton.dev/pipelineTask"]] = &list.Items[i]
			}
			return got, trs
		}
		wait(ctx, t, "PipelineRun "+created.Name)
	}
}

// Logs are the step containers' logs of tr's Pod, by container name.
func (c *Cluster) Logs(ctx context.Context, t testing.TB, tr *v1.TaskRun) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range tr.Status.Steps {
		data, err := c.Kube.CoreV1().Pods(c.Namespace).GetLogs(tr.Status.PodName, &corev1.PodLogOptions{Container: s.Container}).DoRaw(ctx)
		if err != nil {
			t.Logf("clusterrun: logs of %s/%s: %v", tr.Status.PodName, s.Container, err)
			continue
		}
		out[s.Container] = string(data)
	}
	return out
}

func done(c *apis.Condition) bool {
	return c != nil && c.Status != corev1.ConditionUnknown
}

func wait(ctx context.Context, t testing.TB, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("clusterrun: %s not done: %v", what, ctx.Err())
	case <-time.After(pollInterval):
	}
}

// Describe is a one-line summary of a run's condition, for failures.
func Describe(c *apis.Condition) string {
	if c == nil {
		return "no Succeeded condition"
	}
	return strings.Join([]string{string(c.Status), c.Reason, c.Message}, ": ")
}
