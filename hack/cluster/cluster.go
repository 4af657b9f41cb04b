package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// options are the inputs of Start (see main.go).
type options struct {
	State        string
	KubeBin      string
	TektonBin    string
	ChainsBin    string
	TektonConfig string
	ChainsConfig string
	Busybox      string
}

const (
	// nodeIP is added to lo for the node: the kubelet refuses a loopback
	// node IP, and an address on lo keeps every packet on this machine.
	nodeIP   = "10.213.213.1"
	nodeName = "exportreport-node"
	// serviceCIDR and podCIDR route nowhere: there is no kube-proxy, and
	// the pod bridge has no gateway and no address on the host.
	serviceCIDR = "10.96.0.0/16"
	podCIDR     = "10.214.0.0/24"
	bridgeName  = "exportreport0"
	// localVolumeCount local PersistentVolumes are made for claims.
	localVolumeCount = 40
	// webhookPort: the API server calls an ExternalName Service's webhook
	// at https://<externalName>:<port of the webhook configuration>, and
	// Tekton's configurations name no port, so 443.
	webhookPort = 443
)

// cluster is a starting cluster: its state and the clients and files
// later steps need.
type cluster struct {
	opts    options
	s       *State
	pki     *pki
	admin   string // admin kubeconfig
	server  string // https://127.0.0.1:PORT
	kube    kubernetes.Interface
	restCfg *rest.Config
	images  images
}

// Start starts everything and prints CONTAINER_RUNTIME_ENDPOINT=,
// REGISTRY= and KUBECONFIG= (last) on stdout. A failure stops what was
// started.
func Start(ctx context.Context, o options) (err error) {
	began := time.Now()
	if old, lerr := loadState(o.State); lerr == nil && old.running() {
		return fmt.Errorf("%w from %s (bash hack/stop-cluster stops it)", errRunning, o.State)
	} else if lerr == nil {
		// A stopped or crashed cluster: undo what is left of it first.
		if err := Stop(o.State); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(o.State); err != nil {
		return err
	}
	if err := os.MkdirAll(o.State, 0o755); err != nil {
		return err
	}
	c := &cluster{opts: o, s: &State{Dir: o.State, NodeIP: nodeIP}}
	if err := c.s.save(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			slog.Error("start failed; stopping what started", "err", err)
			if serr := Stop(o.State); serr != nil {
				slog.Error("stop", "err", serr)
			}
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"registry", c.startRegistry},
		{"images", c.pushImages},
		{"control plane", c.startControlPlane},
		{"node", c.startNode},
		{"tekton", c.startTekton},
		{"chains", c.startChains},
	}
	for _, st := range steps {
		t := time.Now()
		if err := st.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		slog.Info("step done", "step", st.name, "took", time.Since(t).Round(time.Millisecond))
	}
	slog.Info("cluster ready", "took", time.Since(began).Round(time.Millisecond), "state", o.State)
	// crictl's variable: the node's runtime, for tools and tests that ask
	// how containers ran.
	fmt.Printf("CONTAINER_RUNTIME_ENDPOINT=unix://%s\n", c.s.path("containerd", "containerd.sock"))
	fmt.Printf("REGISTRY=%s\n", c.s.Registry)
	fmt.Printf("KUBECONFIG=%s\n", c.admin)
	return nil
}

func (c *cluster) startRegistry(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.s.Registry = fmt.Sprintf("127.0.0.1:%d", port)
	cfg := c.s.path("registry.yml")
	data := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, c.s.path("registry"), c.s.Registry)
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		return err
	}
	p, err := c.s.run("registry", os.Environ(), "docker-registry", "serve", cfg)
	if err != nil {
		return err
	}
	return waitFor(p, "registry", 30*time.Second, func() error {
		return httpOK(ctx, http.DefaultClient, "http://"+c.s.Registry+"/v2/")
	})
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// startControlPlane: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, with a fresh PKI.
func (c *cluster) startControlPlane(ctx context.Context) error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	etcdPort, etcdPeer, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	if c.pki, err = newPKI(c.s.path("pki")); err != nil {
		return err
	}
	p := c.pki
	apiCrt, apiKey, err := p.issue("apiserver", "kube-apiserver", nil, []string{
		"127.0.0.1", nodeIP, "10.96.0.1", "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	kcCrt, kcKey, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	saPub, saKey, err := p.serviceAccountKey()
	if err != nil {
		return err
	}
	if c.admin, err = p.client("admin", "kubernetes-admin", []string{"system:masters"}, c.server); err != nil {
		return err
	}
	kcmConfig, err := p.client("controller-manager", "system:kube-controller-manager", nil, c.server)
	if err != nil {
		return err
	}
	schedConfig, err := p.client("scheduler", "system:kube-scheduler", nil, c.server)
	if err != nil {
		return err
	}

	// etcd: Debian's etcd-server.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd, err := c.s.run("etcd", os.Environ(), "etcd",
		"--name=exportreport", "--data-dir="+c.s.path("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=exportreport="+peerURL, "--log-level=warn", "--logger=zap")
	if err != nil {
		return err
	}
	if err := waitFor(etcd, "etcd", 30*time.Second, func() error { return httpOK(ctx, http.DefaultClient, etcdURL+"/health") }); err != nil {
		return err
	}

	api, err := c.s.run("kube-apiserver", os.Environ(), filepath.Join(c.opts.KubeBin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--advertise-address="+nodeIP,
		"--tls-cert-file="+apiCrt, "--tls-private-key-file="+apiKey,
		"--client-ca-file="+p.cert,
		"--kubelet-client-certificate="+kcCrt, "--kubelet-client-key="+kcKey,
		"--kubelet-certificate-authority="+p.cert,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		// Tasks users write (buildah, kaniko, ...) may ask for it, as on
		// any kubeadm cluster.
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1")
	if err != nil {
		return err
	}
	c.restCfg, err = clientcmd.BuildConfigFromFlags("", c.admin)
	if err != nil {
		return err
	}
	c.restCfg.QPS, c.restCfg.Burst = 100, 200
	if c.kube, err = kubernetes.NewForConfig(c.restCfg); err != nil {
		return err
	}
	if err := waitFor(api, "kube-apiserver", 2*time.Minute, func() error {
		_, err := c.kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return err
	}

	kcm, err := c.s.run("kube-controller-manager", os.Environ(), filepath.Join(c.opts.KubeBin, "kube-controller-manager"),
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+saKey,
		"--root-ca-file="+p.cert,
		"--cluster-signing-cert-file="+p.cert, "--cluster-signing-key-file="+filepath.Join(p.dir, "ca.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		"--v=1")
	if err != nil {
		return err
	}
	sched, err := c.s.run("kube-scheduler", os.Environ(), filepath.Join(c.opts.KubeBin, "kube-scheduler"),
		"--kubeconfig="+schedConfig,
		"--authentication-kubeconfig="+schedConfig, "--authorization-kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false", "--v=1")
	if err != nil {
		return err
	}
	// The controller manager runs when it gives the default namespace its
	// ServiceAccount: without one every Pod is refused.
	if err := waitFor(kcm, "kube-controller-manager (default ServiceAccount)", 2*time.Minute, func() error {
		_, err := c.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metaGet)
		return err
	}); err != nil {
		return err
	}
	return waitFor(sched, "kube-scheduler", time.Minute, func() error {
		return httpsHealthz(ctx, schedPort)
	})
}

// httpsHealthz asks a component's secure port for /healthz (anonymous
// access to it is allowed by the components' defaults).
func httpsHealthz(ctx context.Context, port int) error {
	return httpOK(ctx, insecureClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
}

// Stop stops what Start started, in reverse order: Tekton and Chains
// first (with a time limit: Tekton's webhook can hang once the API server
// is gone), the kubelet, every pod sandbox (through CRI), containerd, the
// scheduler and controller manager, the API server, and etcd after it
// (the other order leaves the API server hanging in its shutdown); then
// the mounts, the bridge, the address and the files start made outside
// the state directory.
func Stop(dir string) error {
	s, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		slog.Info("no cluster state; nothing to stop", "state", dir)
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(s.Procs) - 1; i >= 0; i-- {
		p := &s.Procs[i]
		if p.Name == "containerd" {
			if err := removePods(s); err != nil {
				errs = append(errs, err)
			}
		}
		grace := 15 * time.Second
		switch p.Name {
		case "kube-apiserver", "etcd":
			grace = 30 * time.Second
		case "tekton-pipelines-webhook":
			grace = 5 * time.Second // it can hang on SIGTERM: killed then
		}
		p.stop(grace)
	}
	errs = append(errs, cleanNode(s)...)
	if err := os.Remove(filepath.Join(dir, "cluster.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
