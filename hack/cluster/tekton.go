package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kinds of a release that run workloads: their containers run here as
// local processes instead (deployment.go), so they are not applied.
var notApplied = map[string]bool{"Deployment": true, "HorizontalPodAutoscaler": true, "PodDisruptionBudget": true}

// adminTweaks are what an administrator sets in Tekton's ConfigMaps after
// installing the release, and why:
//   - set-security-context: Tekton's own init containers get a
//     securityContext the restricted Pod Security profile admits, so
//     TaskRuns can run in restricted namespaces;
//   - set-security-context-read-only-root-filesystem: and a read-only root
//     filesystem (they write only to Tekton's volumes).
var adminTweaks = map[string]map[string]string{
	"feature-flags": {
		"set-security-context":                           "true",
		"set-security-context-read-only-root-filesystem": "true",
	},
}

// startTekton installs Tekton Pipelines from its module's config/ (what
// its release.yaml is made from): everything but the Deployments, with the
// webhook's Service an ExternalName for localhost (the API server refuses
// loopback Endpoints); then runs the webhook, the controller and the
// resolvers as local processes with their Deployments' arguments and
// environment, each with its own ServiceAccount's token (so the release's
// RBAC is what they get), and waits until the webhook answers admission
// requests and the others report ready.
func (c *cluster) startTekton(ctx context.Context) error {
	objs, err := readConfigDir(c.opts.TektonConfig)
	if err != nil {
		return err
	}
	var deployments []*appsv1.Deployment
	var apply []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				return err
			}
			deployments = append(deployments, &d)
		}
		if notApplied[o.GetKind()] {
			continue
		}
		if o.GetKind() == "Service" && o.GetName() == "tekton-pipelines-webhook" {
			externalName(o)
		}
		if data := adminTweaks[o.GetName()]; o.GetKind() == "ConfigMap" && data != nil {
			for k, v := range data {
				if err := unstructured.SetNestedField(o.Object, v, "data", k); err != nil {
					return err
				}
			}
		}
		apply = append(apply, o)
	}
	a, err := newApplier(c.restCfg)
	if err != nil {
		return err
	}
	if err := a.applyOrdered(ctx, apply); err != nil {
		return err
	}
	byName := map[string]*appsv1.Deployment{}
	for _, d := range deployments {
		byName[d.Name] = d
	}
	for _, name := range []string{"tekton-pipelines-webhook", "tekton-pipelines-controller", "tekton-pipelines-remote-resolvers"} {
		if byName[name] == nil {
			return fmt.Errorf("no Deployment %s in %s", name, c.opts.TektonConfig)
		}
	}
	images := map[string]string{
		"ko://github.com/tektoncd/pipeline/cmd/entrypoint":        c.images.entrypoint,
		"ko://github.com/tektoncd/pipeline/cmd/nop":               c.images.nop,
		"ko://github.com/tektoncd/pipeline/cmd/sidecarlogresults": c.images.sidecarLogResults,
		"ko://github.com/tektoncd/pipeline/cmd/workingdirinit":    c.images.workingDirInit,
	}

	webhook, err := c.runDeployment(ctx, byName["tekton-pipelines-webhook"], c.opts.TektonBin, images,
		map[string]string{"WEBHOOK_PORT": strconv.Itoa(webhookPort)})
	if err != nil {
		return err
	}
	if err := waitFor(webhook.proc, "Tekton webhook (admission through the API server)", 2*time.Minute, func() error {
		return c.webhookAdmits(ctx)
	}); err != nil {
		return err
	}
	ctrl, err := c.runDeployment(ctx, byName["tekton-pipelines-controller"], c.opts.TektonBin, images, nil)
	if err != nil {
		return err
	}
	res, err := c.runDeployment(ctx, byName["tekton-pipelines-remote-resolvers"], c.opts.TektonBin, images, nil)
	if err != nil {
		return err
	}
	if err := c.waitLeases(ctx, ctrl, "tekton-pipelines", "tekton-pipelines-controller."); err != nil {
		return err
	}
	return c.waitLeases(ctx, res, "tekton-pipelines-resolvers",
		"controller.tektonresolverframework.bundleresolver", "controller.tektonresolverframework.cluster")
}

// waitLeases waits until p holds, renewed since it started, a leader
// election Lease in ns for each name prefix: its controllers then run.
// (Leases, not probes: Tekton's resolvers and Chains serve knative's
// default probes on port 8080 whatever PROBES_PORT says, and every process
// here shares the host's network, so only the first to start binds it; the
// others log it and go on.)
func (c *cluster) waitLeases(ctx context.Context, p *localPod, ns string, prefixes ...string) error {
	since := p.started.Add(-time.Second)
	return waitFor(p.proc, p.proc.Name+" leader election in "+ns, 2*time.Minute, func() error {
		leases, err := c.kube.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, prefix := range prefixes {
			held := false
			for _, l := range leases.Items {
				if strings.HasPrefix(l.Name, prefix) && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(since) {
					held = true
				}
			}
			if !held {
				return fmt.Errorf("no Lease %s* renewed since %s", prefix, since.Format(time.RFC3339))
			}
		}
		return nil
	})
}

// externalName turns a Service into one of type ExternalName for
// localhost, keeping its ports: the API server then calls a webhook that
// names it at https://localhost:<port> and checks the certificate for
// <service>.<namespace>.svc.
func externalName(o *unstructured.Unstructured) {
	ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
	spec := map[string]any{"type": "ExternalName", "externalName": "localhost"}
	if ports != nil {
		spec["ports"] = ports
	}
	o.Object["spec"] = spec
}

// webhookAdmits is nil once the webhook is serving on localhost and the API
// server really sends it what a user applies: a Task with a step named
// Not_A_DNS_Label is denied by Tekton's validation (a server-side dry run).
func (c *cluster) webhookAdmits(ctx context.Context) error {
	conn, err := tls.Dial("tcp", net.JoinHostPort("localhost", strconv.Itoa(webhookPort)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a probe of the listener only
	if err != nil {
		return err
	}
	conn.Close()
	a, err := newApplier(c.restCfg)
	if err != nil {
		return err
	}
	task := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": "Task",
		"metadata": map[string]any{"name": "webhook-probe", "namespace": "default"},
		"spec": map[string]any{"steps": []any{map[string]any{
			"name": "Not_A_DNS_Label", "image": c.images.shell, "script": "true",
		}}},
	}}
	r, err := a.resource(task)
	if err != nil {
		return err
	}
	_, err = r.Create(ctx, task, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return fmt.Errorf("the API server admitted a Task with an invalid step name: the webhook is not called")
	}
	if !strings.Contains(err.Error(), "admission webhook") || !strings.Contains(err.Error(), "Not_A_DNS_Label") {
		return fmt.Errorf("dry-run of an invalid Task: %w", err)
	}
	return nil
}

// localPod is a Deployment's first container run as a local process.
type localPod struct {
	proc    *Proc
	probes  int
	started time.Time
}

// runDeployment runs d's first container as a local process: the binary
// its ko:// image names from bin, its command-line arguments with ko://
// images replaced by pushed ones (and the shell image by the cluster's),
// its environment (fieldRef metadata.namespace and metadata.name
// resolved), the files of its configMap and secret volumes at a local
// directory that replaces the mount path in its environment and arguments,
// KUBECONFIG with a token of its ServiceAccount, and ports of its own
// (every process here shares the host's network). extra overrides env.
func (c *cluster) runDeployment(ctx context.Context, d *appsv1.Deployment, bin string, images map[string]string, extra map[string]string) (*localPod, error) {
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("Deployment %s has no container", d.Name)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	ns := d.Namespace
	podName := d.Name + "-local"
	binary := filepath.Join(bin, filepath.Base(strings.TrimPrefix(ctr.Image, "ko://")))
	if !strings.HasPrefix(ctr.Image, "ko://") {
		return nil, fmt.Errorf("Deployment %s: image %s is not a ko:// path", d.Name, ctr.Image)
	}

	// Volumes: configMap and secret contents as files, emptyDir as a
	// directory; mount paths are rewritten to these directories.
	mounts := map[string]string{}
	for _, vm := range ctr.VolumeMounts {
		dir := c.s.path("pods", d.Name, vm.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := c.fillVolume(ctx, ns, d.Spec.Template.Spec.Volumes, vm.Name, dir); err != nil {
			return nil, fmt.Errorf("Deployment %s: volume %s: %w", d.Name, vm.Name, err)
		}
		mounts[vm.MountPath] = dir
	}
	rewrite := func(v string) string {
		for mp, dir := range mounts {
			if v == mp || strings.HasPrefix(v, mp+"/") {
				return dir + strings.TrimPrefix(v, mp)
			}
		}
		return v
	}
	// The command is the image's binary (Tekton's resolvers run it under
	// tini); only the arguments are kept.
	args := append([]string(nil), ctr.Args...)
	for i, a := range args {
		if img, ok := images[a]; ok {
			args[i] = img
		} else if i > 0 && args[i-1] == "-shell-image" {
			args[i] = c.images.shell
		} else {
			args[i] = rewrite(a)
		}
	}

	kubeconfig, err := c.serviceAccountKubeconfig(ctx, ns, d.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = rewrite(e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = ns
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		default:
			return nil, fmt.Errorf("Deployment %s: env %s: only values and metadata fieldRefs are supported", d.Name, e.Name)
		}
	}
	env["KUBECONFIG"] = kubeconfig
	env["POD_NAME"] = podName
	env["HOME"] = c.s.path("pods", d.Name)
	env["PROBES_PORT"] = strconv.Itoa(ports[0])
	env["METRICS_PROMETHEUS_HOST"] = "127.0.0.1"
	env["METRICS_PROMETHEUS_PORT"] = strconv.Itoa(ports[1])
	env["PROFILING_PORT"] = strconv.Itoa(ports[2])
	for k, v := range extra {
		env[k] = v
	}
	list := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	started := time.Now()
	p, err := c.s.run(d.Name, list, binary, args...)
	if err != nil {
		return nil, err
	}
	return &localPod{proc: p, probes: ports[0], started: started}, nil
}

// fillVolume writes the volume named name of a Pod spec into dir.
func (c *cluster) fillVolume(ctx context.Context, ns string, vols []corev1.Volume, name, dir string) error {
	for _, v := range vols {
		if v.Name != name {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			cm, err := c.kube.CoreV1().ConfigMaps(ns).Get(ctx, v.ConfigMap.Name, metaGet)
			if err != nil {
				return err
			}
			for k, val := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(val), 0o600); err != nil {
					return err
				}
			}
		case v.Secret != nil:
			sec, err := c.kube.CoreV1().Secrets(ns).Get(ctx, v.Secret.SecretName, metaGet)
			if err != nil {
				return err
			}
			for k, val := range sec.Data {
				if err := os.WriteFile(filepath.Join(dir, k), val, 0o600); err != nil {
					return err
				}
			}
		}
		// emptyDir and projected token volumes: an empty directory.
		return nil
	}
	return fmt.Errorf("not declared in the Pod spec")
}

// serviceAccountKubeconfig writes a kubeconfig authenticating as the
// ServiceAccount ns/name with a token from the TokenRequest API, as the
// kubelet would mount one into the Deployment's Pod.
func (c *cluster) serviceAccountKubeconfig(ctx context.Context, ns, name string) (string, error) {
	if name == "" {
		name = "default"
	}
	exp := int64((7 * 24 * time.Hour).Seconds())
	tr, err := c.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", ns, name, err)
	}
	return writeKubeconfig(filepath.Join(c.pki.dir, "sa-"+ns+"-"+name+".kubeconfig"), c.server, c.pki.cert,
		&clientcmdapi.AuthInfo{Token: tr.Status.Token})
}
