package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var metaGet = metav1.GetOptions{}

// insecureClient reads the health endpoints of components whose serving
// certificates they made themselves, on 127.0.0.1 only.
var insecureClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health checks

// startNode starts the node: containerd (Debian's, with runc) behind the
// CRI, a CNI bridge for pods, and the kubelet; it waits until the Node is
// Ready with no taint left.
func (c *cluster) startNode(ctx context.Context) error {
	if err := c.addNodeIP(); err != nil {
		return err
	}
	if err := c.writeCNI(); err != nil {
		return err
	}
	sock, err := c.startContainerd(ctx)
	if err != nil {
		return err
	}
	if err := c.startKubelet(ctx, sock); err != nil {
		return err
	}
	return c.localVolumes(ctx)
}

// localVolumes are what PersistentVolumeClaims bind to, volumeClaimTemplate
// workspaces among them: a default StorageClass with no provisioner and
// localVolumeCount local PersistentVolumes on the node (directories under
// STATE/volumes, mode 0777). Local volumes, unlike hostPath ones, honour a
// Pod's fsGroup. Each is used once (Retain: a released volume is not
// reused), which is plenty for a test cluster's life.
func (c *cluster) localVolumes(ctx context.Context) error {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "local", Annotations: map[string]string{
			"storageclass.kubernetes.io/is-default-class": "true",
		}},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptrTo(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if _, err := c.kube.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("StorageClass local: %w", err)
	}
	for i := 0; i < localVolumeCount; i++ {
		name := fmt.Sprintf("local-%02d", i)
		dir := c.s.path("volumes", name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              "local",
				PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName},
					}}}},
				}},
			},
		}
		if _, err := c.kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("PersistentVolume %s: %w", name, err)
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

func (c *cluster) addNodeIP() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	addrs, err := lo.Addrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), nodeIP+"/") {
			return nil // left by a run that was killed; stop removes it
		}
	}
	if out, err := exec.Command("ip", "addr", "add", nodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("ip addr add %s/32 dev lo: %v: %s", nodeIP, err, out)
	}
	c.s.Added.LoAddress = nodeIP + "/32"
	return c.s.save()
}

// writeCNI writes the pod network: a bridge with no gateway, no address on
// the host side and no masquerading, so pods get an address (CRI refuses
// a network that gives none) and reach nothing but each other. Steps that
// must reach a registry on 127.0.0.1 run with hostNetwork.
func (c *cluster) writeCNI() error {
	dir := c.s.path("cni", "net.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "exportreport",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "dataDir": %q
      }
    }
  ]
}
`, bridgeName, podCIDR, c.s.path("cni", "ipam"))
	c.s.Added.Bridge = bridgeName
	if err := c.s.save(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "10-exportreport.conflist"), []byte(conf), 0o644)
}

// startContainerd starts Debian's containerd 1.6 with its CRI plugin: the
// native snapshotter (overlayfs is not available everywhere these run),
// restrict_oom_score_adj (these sandboxes refuse a negative
// oom_score_adj, and runc then fails with "can't get final child's PID
// from pipe: EOF"), the sandbox image from the local registry, and that
// registry spoken to over plain HTTP.
func (c *cluster) startContainerd(ctx context.Context) (string, error) {
	dir := c.s.path("containerd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
    endpoint = [%q]
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc",
		filepath.Join(dir, "opt"), c.images.pause, c.s.path("cni", "net.d"),
		c.s.Registry, "http://"+c.s.Registry)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	p, err := c.s.run("containerd", os.Environ(), "containerd", "--config", path)
	if err != nil {
		return "", err
	}
	return sock, waitFor(p, "containerd (CRI)", time.Minute, func() error {
		rt, conn, err := criClient(ctx, sock)
		if err != nil {
			return err
		}
		defer conn.Close()
		st, err := rt.Status(ctx, &cri.StatusRequest{})
		if err != nil {
			return err
		}
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.Type == cri.RuntimeReady && !cond.Status {
				return fmt.Errorf("runtime not ready: %s", cond.Message)
			}
		}
		return nil
	})
}

func criClient(ctx context.Context, sock string) (cri.RuntimeServiceClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return cri.NewRuntimeServiceClient(conn), conn, nil
}

// startKubelet starts the real kubelet with its own client identity
// (system:node:NAME, so the Node authorizer and NodeRestriction apply) and
// a serving certificate from the cluster CA (the API server checks it when
// it reads logs).
func (c *cluster) startKubelet(ctx context.Context, sock string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	kubeletConfig, err := c.pki.client("kubelet", "system:node:"+nodeName, []string{"system:nodes"}, c.server)
	if err != nil {
		return err
	}
	crt, key, err := c.pki.issue("kubelet-serving", "system:node:"+nodeName, []string{"system:nodes"},
		[]string{nodeIP, nodeName}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	dir := c.s.path("kubelet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// cgroupfs and no QoS cgroups: these machines have cgroup v1 and no
	// systemd. Eviction thresholds low: a test machine's disk may be full
	// enough to taint the node otherwise.
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
readOnlyPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
tlsCertFile: %s
tlsPrivateKeyFile: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: ["none"]
failSwapOn: false
failCgroupV1: false
oomScoreAdj: 0
podLogsDir: %s
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
`, nodeIP, ports[0], ports[1], c.pki.cert, crt, key, sock, c.s.path("pod-logs"))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := c.s.run("kubelet", os.Environ(), filepath.Join(c.opts.KubeBin, "kubelet"),
		"--config="+cfgPath, "--kubeconfig="+kubeletConfig,
		"--root-dir="+filepath.Join(dir, "root"), "--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+nodeName, "--node-ip="+nodeIP, "--v=1")
	if err != nil {
		return err
	}
	return waitFor(p, "node "+nodeName+" Ready and untainted", 3*time.Minute, func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metaGet)
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				return fmt.Errorf("node not ready: %s", cond.Message)
			}
		}
		if len(n.Spec.Taints) > 0 {
			return fmt.Errorf("node tainted: %v", n.Spec.Taints)
		}
		return nil
	})
}

// removePods stops and removes every pod sandbox through the CRI, which
// tears down their network namespaces and CNI interfaces and ends their
// shims; the kubelet is stopped by then, so nothing restarts them.
func removePods(s *State) error {
	sock := s.path("containerd", "containerd.sock")
	if _, err := os.Stat(sock); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, conn, err := criClient(ctx, sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	list, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("CRI list pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("CRI stop %s: %w", sb.Metadata.GetName(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("CRI remove %s: %w", sb.Metadata.GetName(), err))
		}
	}
	slog.Info("removed pod sandboxes", "count", len(list.Items))
	return errors.Join(errs...)
}

// cleanNode undoes what start did outside its processes: mounts under the
// state directory (the kubelet's volumes), the bridge, the lo address and
// the signing secret directory.
func cleanNode(s *State) []error {
	var errs []error
	for _, m := range mountsUnder(s.Dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if s.Added.Bridge != "" {
		if _, err := net.InterfaceByName(s.Added.Bridge); err == nil {
			if out, err := exec.Command("ip", "link", "del", s.Added.Bridge).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", s.Added.Bridge, err, out))
			}
		}
	}
	if s.Added.LoAddress != "" {
		if out, err := exec.Command("ip", "addr", "del", s.Added.LoAddress, "dev", "lo").CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Cannot assign") {
			errs = append(errs, fmt.Errorf("ip addr del %s dev lo: %v: %s", s.Added.LoAddress, err, out))
		}
	}
	if s.Added.SigningSecrets != "" {
		if err := os.RemoveAll(s.Added.SigningSecrets); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
