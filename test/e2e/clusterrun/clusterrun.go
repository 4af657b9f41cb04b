// Package clusterrun runs TaskRuns and PipelineRuns on a real Kubernetes
// cluster with Tekton installed (KUBECONFIG; hack/start-cluster makes one
// on this machine), for the e2e tests' cluster mode. Each Cluster is a
// fresh namespace: it installs objects there with server-side apply (as
// `kubectl apply --server-side` does), binds claims to host directories
// (local PersistentVolumes on the node), creates runs, waits for Tekton's
// controller to finish them and returns them as podrun.Run values (the
// TaskRun and Pod as the API server has them, each container's log through
// the kubelet, and how the runtime ran each container, through CRI), so
// the same cases run on podrun and here.
package clusterrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/exportreport/exportreport/test/e2e/podrun"
)

// pollInterval is how often a run's status is read (there is no informer).
const pollInterval = 500 * time.Millisecond

// Client is a connection to the cluster.
type Client struct {
	Config *rest.Config
	Kube   kubernetes.Interface
	Tekton versioned.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	// CRI, when set (unix://PATH of the node's runtime), is asked how
	// each container of a run was run (Run.Engine).
	CRI string
}

// Connect connects to the cluster of kubeconfig.
func Connect(t testing.TB, kubeconfig string) *Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("clusterrun: kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c := &Client{Config: cfg}
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	if c.Tekton, err = versioned.NewForConfig(cfg); err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return c
}

// Cluster is a namespace on the cluster, made for one test.
type Cluster struct {
	*Client
	Namespace string
	// HostNetwork is set in the pod template of every run: the steps then
	// reach registries on the node's 127.0.0.1. Default true; a namespace
	// that enforces the restricted Pod Security profile cannot have it.
	HostNetwork bool
	node        string
	seq         int
}

// Namespace creates a namespace for t, with labels, deleted (with
// everything in it) when t ends.
func (c *Client) Namespace(ctx context.Context, t testing.TB, labels map[string]string) *Cluster {
	t.Helper()
	ns, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("clusterrun: want the one node of a single-node cluster: %v (%d nodes)", err, len(nodes.Items))
	}
	cl := &Cluster{Client: c, Namespace: ns.Name, HostNetwork: true, node: nodes.Items[0].Name}
	// The namespace's default ServiceAccount comes from the controller
	// manager; Pods are refused until it exists.
	cl.poll(ctx, t, "the default ServiceAccount of "+ns.Name, func() (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	return cl
}

func ignoreNotFound(err error) error {
	if k8serrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ApplyYAML applies every document of a YAML stream into the namespace
// with server-side apply, as `kubectl apply --server-side` does.
func (c *Cluster) ApplyYAML(ctx context.Context, t testing.TB, stream []byte) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("clusterrun: decode YAML: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		c.apply(ctx, t, &unstructured.Unstructured{Object: m})
	}
}

// Apply applies typed objects (Tasks, Secrets, ServiceAccounts, ...) into
// the namespace with server-side apply.
func (c *Cluster) Apply(ctx context.Context, t testing.TB, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatalf("clusterrun: %T: %v", o, err)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			gvk, err := apiVersionKind(o)
			if err != nil {
				t.Fatalf("clusterrun: %v", err)
			}
			u.SetAPIVersion(gvk[0])
			u.SetKind(gvk[1])
		}
		c.apply(ctx, t, u)
	}
}

// apiVersionKind names the kinds the tests apply as typed objects.
func apiVersionKind(o runtime.Object) ([2]string, error) {
	switch o.(type) {
	case *v1.Task:
		return [2]string{"tekton.dev/v1", "Task"}, nil
	case *v1.Pipeline:
		return [2]string{"tekton.dev/v1", "Pipeline"}, nil
	case *corev1.ConfigMap:
		return [2]string{"v1", "ConfigMap"}, nil
	case *corev1.Secret:
		return [2]string{"v1", "Secret"}, nil
	case *corev1.ServiceAccount:
		return [2]string{"v1", "ServiceAccount"}, nil
	}
	if strings.HasSuffix(fmt.Sprintf("%T", o), ".StepAction") {
		return [2]string{"tekton.dev/v1beta1", "StepAction"}, nil
	}
	return [2]string{}, fmt.Errorf("kind %T is not applied by clusterrun", o)
}

func (c *Cluster) apply(ctx context.Context, t testing.TB, u *unstructured.Unstructured) {
	t.Helper()
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("clusterrun: %s: %v", gvk, err)
	}
	u.SetNamespace(c.Namespace)
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	data, err := json.Marshal(u)
	if err != nil {
		t.Fatalf("clusterrun: %v", err)
	}
	var r dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		r = c.dyn.Resource(m.Resource).Namespace(c.Namespace)
	}
	force := true
	if _, err := r.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "exportreport-e2e", Force: &force}); err != nil {
		t.Fatalf("clusterrun: apply %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// Claim makes the PersistentVolumeClaim name in the namespace, bound to a
// local PersistentVolume of the node at dir (a directory of the test on
// this machine), so steps read and write dir.
func (c *Cluster) Claim(ctx context.Context, t testing.TB, name, dir string) {
	t.Helper()
	pvName := c.Namespace + "-" + name
	size := resource.MustParse("1Gi")
	_, err := c.Kube.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: c.Namespace, Name: name},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{c.node},
				}}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: PersistentVolume for claim %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = c.Kube.CoreV1().PersistentVolumes().Delete(context.Background(), pvName, metav1.DeleteOptions{})
	})
	empty := ""
	_, err = c.Kube.CoreV1().PersistentVolumeClaims(c.Namespace).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &empty,
			VolumeName:       pvName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: claim %s: %v", name, err)
	}
}

// withHostNetwork sets hostNetwork in a pod template when the Cluster
// asks for it, keeping what the run's template already says.
func (c *Cluster) withHostNetwork(tpl *pod.Template) *pod.Template {
	if !c.HostNetwork {
		return tpl
	}
	if tpl == nil {
		tpl = &pod.Template{}
	}
	tpl.HostNetwork = true
	return tpl
}

// Run creates tr in the namespace, waits until Tekton's controller has
// finished it and returns it with its Pod, logs and, with CRI set, how
// each container ran.
func (c *Cluster) Run(ctx context.Context, t testing.TB, tr *v1.TaskRun) *podrun.Run {
	t.Helper()
	tr = tr.DeepCopy()
	tr.Namespace = c.Namespace
	tr.ResourceVersion = ""
	tr.Spec.PodTemplate = c.withHostNetwork(tr.Spec.PodTemplate)
	start := time.Now()
	created, err := c.Tekton.TektonV1().TaskRuns(c.Namespace).Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("clusterrun: create TaskRun %s: %v", tr.Name, err)
	}
	got := c.waitTaskRun(ctx, t, created.Name)
	t.Logf("clusterrun: TaskRun %s/%s done in %s: %s", c.Namespace, got.Name, time.Since(start).Round(time.Millisecond), Describe(got.Status.GetCondition(apis.ConditionSucceeded)))
	return c.runOf(ctx, t, got)
}

func (c *Cluster) waitTaskRun(ctx context.Context, t testing.TB, name string) *v1.TaskRun {
	t.Helper()
	var got *v1.TaskRun
	c.poll(ctx, t, "TaskRun "+name, func() (bool, error) {
		var err error
		got, err = c.Tekton.TektonV1().TaskRuns(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil && done(got.Status.GetCondition(apis.ConditionSucceeded)), err
	})
	return got
}

// runOf reads the Pod, the logs and the runtime's view of a finished
// TaskRun.
func (c *Cluster) runOf(ctx context.Context, t testing.TB, tr *v1.TaskRun) *podrun.Run {
	t.Helper()
	run := &podrun.Run{TaskRun: tr, Logs: map[string]string{}}
	if tr.Status.PodName == "" {
		return run // refused before a Pod was made
	}
	p, err := c.Kube.CoreV1().Pods(c.Namespace).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("clusterrun: Pod of %s: %v", tr.Name, err)
	}
	run.Pod = p
	for _, ctr := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		data, err := c.Kube.CoreV1().Pods(c.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name}).DoRaw(ctx)
		if err != nil {
			t.Logf("clusterrun: log of %s/%s: %v", p.Name, ctr.Name, err)
			continue
		}
		run.Logs[ctr.Name] = string(data)
	}
	if c.CRI != "" {
		run.Engine = engine(ctx, t, c.CRI, p)
	}
	return run
}

// RunPipeline creates pr, waits until it is done and returns the Run of
// each TaskRun it made, by pipeline task name, in the order they started.
func (c *Cluster) RunPipeline(ctx context.Context, t testing.TB, pr *v1.PipelineRun) (*podrun.PipelineRun, error) {
	t.Helper()
	pr = pr.DeepCopy()
	pr.Namespace = c.Namespace
	if c.HostNetwork {
		if pr.Spec.TaskRunTemplate.PodTemplate == nil {
			pr.Spec.TaskRunTemplate.PodTemplate = &pod.Template{}
		}
		pr.Spec.TaskRunTemplate.PodTemplate.HostNetwork = true
	}
	start := time.Now()
	created, err := c.Tekton.TektonV1().PipelineRuns(c.Namespace).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create PipelineRun %s: %w", pr.Name, err)
	}
	var got *v1.PipelineRun
	c.poll(ctx, t, "PipelineRun "+created.Name, func() (bool, error) {
		got, err = c.Tekton.TektonV1().PipelineRuns(c.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
		return err == nil && done(got.Status.GetCondition(apis.ConditionSucceeded)), err
	})
	t.Logf("clusterrun: PipelineRun %s/%s done in %s: %s", c.Namespace, got.Name, time.Since(start).Round(time.Millisecond), Describe(got.Status.GetCondition(apis.ConditionSucceeded)))
	list, err := c.Tekton.TektonV1().TaskRuns(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + got.Name})
	if err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i].Status.StartTime, list.Items[j].Status.StartTime
		return a != nil && b != nil && a.Before(b)
	})
	out := &podrun.PipelineRun{Runs: map[string]*podrun.Run{}}
	for i := range list.Items {
		name := list.Items[i].Labels["tekton.dev/pipelineTask"]
		out.Order = append(out.Order, name)
		out.Runs[name] = c.runOf(ctx, t, &list.Items[i])
	}
	if c := got.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		return out, fmt.Errorf("PipelineRun %s: %s", got.Name, Describe(c))
	}
	return out, nil
}

// poll calls f until it reports done, fails t on an error or when ctx ends.
func (c *Cluster) poll(ctx context.Context, t testing.TB, what string, f func() (bool, error)) {
	t.Helper()
	for {
		ok, err := f()
		if err != nil {
			t.Fatalf("clusterrun: %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("clusterrun: %s not done: %v", what, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

func done(c *apis.Condition) bool {
	return c != nil && c.Status != corev1.ConditionUnknown
}

// Describe is a one-line summary of a run's condition, for failures.
func Describe(c *apis.Condition) string {
	if c == nil {
		return "no Succeeded condition"
	}
	return strings.Join([]string{string(c.Status), c.Reason, c.Message}, ": ")
}

// Substitute replaces, in a YAML stream, each key of repl (a literal) by
// its value: the Catalog tests name localhost:5000 and public images.
func Substitute(stream []byte, repl map[string]string) []byte {
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, regexp.QuoteMeta(k))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys))) // longest first among shared prefixes
	re := regexp.MustCompile(strings.Join(keys, "|"))
	return re.ReplaceAllFunc(stream, func(b []byte) []byte { return []byte(repl[string(b)]) })
}
