//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/exportreport/exportreport/test/distribution"
	"github.com/exportreport/exportreport/test/e2e/clusterrun"
	"github.com/exportreport/exportreport/test/e2e/podrun"
	"github.com/exportreport/exportreport/test/e2e/stepimage"
)

const koVersion = "v0.19.1"

// env is what every case shares: a registry holding the step and tool
// images, the Tasks, StepAction and Pipelines of the release YAML (ko://
// replaced by digests), and how runs are run: podrun (Tekton's code, the
// Docker engine as the kubelet; images in a registry the test starts, and
// the images Tekton's controller is configured with) or a real cluster
// (cluster; the release applied in each test's namespace).
type env struct {
	root string
	// registry is the host:port of the registry holding the step and tool
	// images (Docker and the cluster's node pull from 127.0.0.1 over HTTP).
	registry    string
	release     []runtime.Object
	releaseYAML []byte
	// bundles are the release's Tekton bundles by "kind/name" (cluster
	// mode only: hack/release's bundles.txt).
	bundles map[string]string
	busybox string
	// tools: an image with crane and a busybox shell under /busybox, like
	// gcr.io/go-containerregistry/crane:debug (root, as that image runs:
	// the Catalog tests' scripts chmod the workspace they created).
	tools string

	// podrun mode
	images *distribution.Registry
	tekton pipeline.Images
	// cluster mode
	cluster *clusterrun.Client
}

// runner runs a case's TaskRuns and PipelineRuns: podrun, or a namespace
// of the cluster.
type runner interface {
	// Claim binds the PersistentVolumeClaim name to the host directory dir.
	Claim(t *testing.T, name, dir string)
	Run(ctx context.Context, t testing.TB, tr *v1.TaskRun) *podrun.Run
	RunPipeline(ctx context.Context, t testing.TB, pr *v1.PipelineRun) (*podrun.PipelineRun, error)
}

// podRunner is a podrun.Runner as a runner.
type podRunner struct{ *podrun.Runner }

func (r podRunner) Claim(_ *testing.T, name, dir string) { r.Claims[name] = dir }

// clusterRunner is a namespace of the cluster as a runner.
type clusterRunner struct{ *clusterrun.Cluster }

func (r clusterRunner) Claim(t *testing.T, name, dir string) { r.Cluster.Claim(ctx(t), t, name, dir) }

func newEnv(t *testing.T) *env {
	t.Helper()
	distribution.RequireDocker(t)
	distribution.RequireTool(t, "docker-registry")
	e := &env{root: repoRoot(t), busybox: busyboxBinary(t)}
	e.images = distribution.Start(t)
	e.registry = e.images.Host()

	start := time.Now()
	entrypoint := stepimage.GoBuild(t, ".", "github.com/tektoncd/pipeline/cmd/entrypoint")
	ep := stepimage.Push(t, e.registry+"/tekton/entrypoint", []stepimage.File{{Path: "/ko-app/entrypoint", Source: entrypoint}},
		stepimage.Config{Entrypoint: []string{"/ko-app/entrypoint"}, User: "65532"})
	shell := stepimage.Push(t, e.registry+"/tekton/busybox", stepimage.Busybox(t, e.busybox, "/bin"),
		stepimage.Config{Env: []string{"PATH=/bin"}, User: "65532"})
	e.tekton = pipeline.Images{
		EntrypointImage:        ep,
		ShellImage:             shell,
		NopImage:               shell,
		SidecarLogResultsImage: shell,
		ShellImageWin:          shell,
		WorkingDirInitImage:    shell,
	}
	e.pushTools(t)
	t.Logf("Tekton entrypoint, shell and tool images built and pushed in %s", time.Since(start).Round(time.Second))

	start = time.Now()
	e.releaseYAML, _ = e.koRelease(t)
	e.release = decodeRelease(t, e.releaseYAML)
	t.Logf("hack/release (ko %s) took %s", koVersion, time.Since(start).Round(time.Second))
	return e
}

// newClusterEnv is the cluster mode's env: the cluster of KUBECONFIG, with
// Tekton installed, pulling from the registry REGISTRY (what
// hack/start-cluster prints); the release is built with hack/release into
// that registry, bundles included.
func newClusterEnv(t *testing.T) *env {
	t.Helper()
	if os.Getenv("E2E_CLUSTER") == "" {
		t.Skip("E2E_CLUSTER is not set: the cluster mode runs from hack/test-cluster (or set KUBECONFIG, REGISTRY and E2E_CLUSTER=1)")
	}
	kubeconfig, registry := os.Getenv("KUBECONFIG"), os.Getenv("REGISTRY")
	if kubeconfig == "" || registry == "" {
		t.Fatal("E2E_CLUSTER is set: KUBECONFIG and REGISTRY must name the cluster and the registry its node pulls from (bash hack/start-cluster prints both)")
	}
	e := &env{root: repoRoot(t), busybox: busyboxBinary(t), registry: registry}
	e.cluster = clusterrun.Connect(t, kubeconfig)
	e.cluster.CRI = os.Getenv("CONTAINER_RUNTIME_ENDPOINT")
	start := time.Now()
	e.pushTools(t)
	var bundles []byte
	e.releaseYAML, bundles = e.koRelease(t)
	e.release = decodeRelease(t, e.releaseYAML)
	e.bundles = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(bundles)), "\n") {
		kindName, ref, ok := strings.Cut(line, " ")
		assert.Assert(t, ok, "bundles.txt line %q", line)
		e.bundles[kindName] = ref
	}
	t.Logf("tool image and release (ko %s, bundles) built and pushed to %s in %s", koVersion, registry, time.Since(start).Round(time.Second))
	return e
}

// pushTools builds the crane tool image into the env's registry: crane
// and busybox, user root, like gcr.io/go-containerregistry/crane:debug.
func (e *env) pushTools(t *testing.T) {
	t.Helper()
	crane := stepimage.GoBuild(t, ".", "github.com/google/go-containerregistry/cmd/crane")
	e.tools = stepimage.Push(t, e.registry+"/tools/crane", append(stepimage.Busybox(t, e.busybox, "/busybox"),
		stepimage.File{Path: "/ko-app/crane", Source: crane}, stepimage.File{Path: "/tmp", Dir: true, Mode: 0o1777}),
		stepimage.Config{Entrypoint: []string{"/ko-app/crane"}, Env: []string{"PATH=/ko-app:/busybox"}})
}

// runner is a fresh runner holding the release's Tasks, StepAction and
// Pipelines and objects: a podrun.Runner (its own fake API server), or a
// new namespace of the cluster where the release YAML is applied.
func (e *env) runner(t *testing.T, objects ...runtime.Object) runner {
	t.Helper()
	if e.cluster != nil {
		ns := e.cluster.Namespace(ctx(t), t, nil)
		ns.ApplyYAML(ctx(t), t, e.releaseYAML)
		ns.Apply(ctx(t), t, objects...)
		return clusterRunner{ns}
	}
	all := append([]runtime.Object(nil), objects...)
	for _, o := range e.release {
		all = append(all, o.DeepCopyObject())
	}
	return podRunner{podrun.New(t, e.tekton, all...)}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	assert.NilError(t, err)
	return root
}

func cacheDir(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		assert.NilError(t, err)
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "exportreport")
}

// busyboxBinary is $BUSYBOX or the static busybox hack/test-e2e unpacks
// from Debian's busybox-static package.
func busyboxBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("BUSYBOX")
	if p == "" {
		p = filepath.Join(cacheDir(t), "busybox-static", "x", "bin", "busybox")
	}
	if _, err := os.Stat(p); err != nil {
		distribution.Unavailable(t, "no static busybox at %s (bash hack/test-e2e downloads Debian's busybox-static; or set BUSYBOX): %v", p, err)
	}
	return p
}

// koBinary is $KO or ko v0.19.1 in the cache hack/release installs it in.
func koBinary(t *testing.T) string {
	t.Helper()
	if ko := os.Getenv("KO"); ko != "" {
		return ko
	}
	bin := filepath.Join(cacheDir(t), "ko-"+koVersion)
	ko := filepath.Join(bin, "ko")
	if _, err := os.Stat(ko); err == nil {
		return ko
	}
	cmd := exec.Command("go", "install", "github.com/google/ko@"+koVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		distribution.Unavailable(t, "ko %s cannot be installed with go install: %v: %s", koVersion, err, out)
	}
	return ko
}

// koRelease runs hack/release, as a release is made, with a local base
// image (hack/ko-base) and the env's registry, and returns the release
// YAML and bundles.txt.
func (e *env) koRelease(t *testing.T) (release, bundles []byte) {
	t.Helper()
	base := icmd.RunCmd(icmd.Command("go", "run", "./hack/ko-base", "-insecure", e.registry+"/ko-base:e2e"), icmd.Dir(e.root))
	base.Assert(t, icmd.Success)
	out := filepath.Join(t.TempDir(), "release.yaml")
	res := icmd.RunCmd(icmd.Command("bash", filepath.Join(e.root, "hack", "release"), "-o", out, "--insecure-registry"),
		icmd.Dir(e.root),
		icmd.WithEnv(append(os.Environ(),
			"KO="+koBinary(t),
			"KO_DOCKER_REPO="+e.registry+"/exportreport",
			"KO_DEFAULTBASEIMAGE="+strings.TrimSpace(base.Stdout()),
		)...))
	res.Assert(t, icmd.Success)
	release, err := os.ReadFile(out)
	assert.NilError(t, err)
	bundles, err = os.ReadFile(filepath.Join(filepath.Dir(out), "bundles.txt"))
	assert.NilError(t, err)
	return release, bundles
}

// decodeRelease decodes the Tasks and StepActions of a release YAML.
func decodeRelease(t *testing.T, stream []byte) []runtime.Object {
	t.Helper()
	assert.Assert(t, !bytes.Contains(stream, []byte("ko://")))
	out := decodeObjects(t, stream)
	for _, o := range out {
		switch x := o.(type) {
		case *v1.Task:
			x.Namespace = podrun.Namespace
		case *v1beta1.StepAction:
			x.Namespace = podrun.Namespace
		case *v1.Pipeline:
			x.Namespace = podrun.Namespace
		default:
			t.Fatalf("release YAML: unexpected %T", o)
		}
	}
	return out
}

func stepActionObject() runtime.Object { return &v1beta1.StepAction{} }

// decodeFile decodes one YAML document of the repository into obj, strictly.
func decodeFile(t *testing.T, e *env, rel string, obj any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.root, rel))
	assert.NilError(t, err)
	assert.NilError(t, yaml.UnmarshalStrict(data, obj), rel)
}

// sharedDir is a host directory standing for a PersistentVolumeClaim:
// writable by every user, as an fsGroup makes a volume writable by the
// Pod's group.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o777))
	return dir
}

// writeLayout writes a random two-layer image as an OCI image layout at
// dir, writable by every user, and returns its digest.
func writeLayout(t *testing.T, dir string) string {
	t.Helper()
	img, err := random.Image(2048, 2)
	assert.NilError(t, err)
	// OCI media types: skopeo 1.9 finds only those by tag in a layout.
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img))
	assert.NilError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return os.Chmod(path, 0o777)
		}
		return os.Chmod(path, 0o644)
	}))
	d, err := img.Digest()
	assert.NilError(t, err)
	return d.String()
}

// skopeoDigest is the sha256 of the raw manifest skopeo reads at ref
// (docker://... or oci:DIR:TAG).
func skopeoDigest(t *testing.T, ref string, args ...string) string {
	t.Helper()
	skopeo := distribution.RequireTool(t, "skopeo")
	res := icmd.RunCmd(icmd.Command(skopeo, append(append([]string{"inspect", "--raw"}, args...), ref)...), icmd.WithTimeout(time.Minute))
	res.Assert(t, icmd.Success)
	sum := sha256.Sum256([]byte(res.Stdout()))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}
