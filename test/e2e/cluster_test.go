//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/exportreport/exportreport/test/e2e/clusterrun"
	"github.com/exportreport/exportreport/test/e2e/podrun"
	"github.com/exportreport/exportreport/test/e2e/stepimage"
)

// TestCluster is the cluster mode (hack/test-cluster): on a real cluster
// with Tekton's controller, webhook and resolvers and Chains (what
// hack/start-cluster starts; E2E_CLUSTER=1, KUBECONFIG, REGISTRY and,
// for how containers ran, CONTAINER_RUNTIME_ENDPOINT), with the release
// built by hack/release into REGISTRY and installed from release.yaml (and
// its bundles) only, it runs every case TestTasks runs with podrun, every
// Catalog tests/run.yaml, the Tasks through the bundles and cluster
// resolvers, under the restricted Pod Security profile, and checks what
// Chains signs.
func TestCluster(t *testing.T) {
	start := time.Now()
	e := newClusterEnv(t)
	t.Logf("environment ready in %s", time.Since(start).Round(time.Second))
	t.Run("admission webhook", func(t *testing.T) { testWebhook(t, e) })
	t.Run("cases", func(t *testing.T) { runCases(t, e) })
	t.Run("catalog tests", func(t *testing.T) { testCatalog(t, e) })
	t.Run("resolvers", func(t *testing.T) { testResolvers(t, e) })
	t.Run("restricted Pod Security", func(t *testing.T) { testPodSecurity(t, e) })
	t.Run("chains", func(t *testing.T) { testChains(t, e) })
	t.Run("builders", func(t *testing.T) { testBuilders(t, e) })
}

// testWebhook: the API server really calls Tekton's webhook for what a
// user applies: validation (a step named Not_A_DNS_Label is denied),
// defaulting (a TaskRun gets the default timeout and ServiceAccount) and
// conversion (a Task applied as tekton.dev/v1beta1 is served as v1, its
// step's resources as computeResources).
func testWebhook(t *testing.T, e *env) {
	r := e.runner(t).(clusterRunner)
	bad := &v1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: "bad-step-name"},
		Spec:       v1.TaskSpec{Steps: []v1.Step{{Name: "Not_A_DNS_Label", Image: e.tools, Script: "true"}}},
	}
	_, err := r.Tekton.TektonV1().Tasks(r.Namespace).Create(ctx(t), bad, metav1.CreateOptions{})
	assert.ErrorContains(t, err, `admission webhook "validation.webhook.pipeline.tekton.dev" denied the request`)
	assert.ErrorContains(t, err, "Not_A_DNS_Label")

	tr, err := r.Tekton.TektonV1().TaskRuns(r.Namespace).Create(ctx(t), &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "defaulted"},
		Spec:       v1.TaskRunSpec{TaskRef: &v1.TaskRef{Name: "no-such-task"}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	assert.NilError(t, err)
	assert.Check(t, tr.Spec.Timeout != nil && tr.Spec.Timeout.Duration == time.Hour, "timeout %v", tr.Spec.Timeout)
	assert.Check(t, is.Equal(tr.Spec.ServiceAccountName, "default"))

	r.ApplyYAML(ctx(t), t, []byte(`apiVersion: tekton.dev/v1beta1
kind: Task
metadata:
  name: converted
spec:
  steps:
    - name: hello
      image: `+e.tools+`
      script: echo hello
      resources:
        requests:
          memory: 10Mi
`))
	got, err := r.Tekton.TektonV1().Tasks(r.Namespace).Get(ctx(t), "converted", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(got.Spec.Steps, 1))
	assert.Check(t, is.Equal(got.Spec.Steps[0].Script, "echo hello"))
	// v1beta1's step "resources" is v1's "computeResources".
	assert.Check(t, is.Equal(got.Spec.Steps[0].ComputeResources.Requests.Memory().String(), "10Mi"))
}

// requireFeatureFlags fails t unless Tekton's feature-flags ConfigMap on
// the cluster has each of want.
func (e *env) requireFeatureFlags(t *testing.T, want map[string]string) {
	t.Helper()
	cm, err := e.cluster.Kube.CoreV1().ConfigMaps("tekton-pipelines").Get(ctx(t), "feature-flags", metav1.GetOptions{})
	assert.NilError(t, err)
	for k, v := range want {
		assert.Equal(t, cm.Data[k], v, "feature-flags %s on the cluster", k)
	}
}

// testCatalog runs every Catalog tests/run.yaml of tasks/ and pipelines/,
// as the Tekton Catalog's e2e does, against the release: with the registry
// the Catalog tests call localhost:5000 being REGISTRY, the public images
// they name replaced by local stand-ins (crane:debug by the tool image;
// kaniko by fakekaniko through the Pipeline's BUILDER_IMAGE param), and
// hostNetwork so steps reach REGISTRY. Each run must succeed, set every
// result its Task or Pipeline declares, and every IMAGE_DIGEST result must
// be what the registry serves for the IMAGE_URL beside it.
func testCatalog(t *testing.T, e *env) {
	kaniko := stepimage.GoBuild(t, ".", "./fakekaniko")
	builder := stepimage.Push(t, e.registry+"/tools/fakekaniko", []stepimage.File{{Path: "/kaniko/executor", Source: kaniko}},
		stepimage.Config{Entrypoint: []string{"/kaniko/executor"}, User: "65532"})
	repl := map[string]string{
		"localhost:5000": e.registry,
		"gcr.io/go-containerregistry/crane:debug": e.tools,
	}
	// The Pipelines' image params, when a run leaves them to their
	// defaults (public images).
	standIns := map[string]string{"BUILDER_IMAGE": builder, "CONSUMER_IMAGE": e.tools}
	// Catalog tests that need the internet cannot run here.
	needsInternet := map[string]string{
		"pipelines/buildpacks-report/0.1/tests/run.yaml": "it clones from GitHub through the hub resolver and builds with the Paketo builder from Docker Hub",
	}
	runs, err := filepath.Glob(filepath.Join(e.root, "*", "*", "*", "tests", "run.yaml"))
	assert.NilError(t, err)
	assert.Assert(t, len(runs) >= 4, "Catalog tests: %v", runs)
	for _, run := range runs {
		rel, _ := filepath.Rel(e.root, run)
		t.Run(rel, func(t *testing.T) {
			if why := needsInternet[rel]; why != "" {
				t.Skipf("not run here, without internet: %s", why)
			}
			r := e.runner(t).(clusterRunner)
			if res := filepath.Join(filepath.Dir(run), "resources.yaml"); fileExists(res) {
				r.ApplyYAML(ctx(t), t, clusterrun.Substitute(readFile(t, res), repl))
			}
			for _, o := range decodeObjects(t, clusterrun.Substitute(readFile(t, run), repl)) {
				switch x := o.(type) {
				case *v1.TaskRun:
					got := r.Run(ctx(t), t, x)
					assertSucceeded(t, got)
					checkResults(t, got.TaskRun.Name, got.TaskRun.Status.TaskSpec, got.TaskRun.Status.Results)
					checkServed(t, got.Results())
				case *v1.PipelineRun:
					set := map[string]bool{}
					for _, p := range x.Spec.Params {
						set[p.Name] = true
					}
					for _, p := range pipelineParams(t, e, x) {
						if img := standIns[p.Name]; img != "" && !set[p.Name] {
							x.Spec.Params = append(x.Spec.Params, strParam(p.Name, img))
						}
					}
					got, err := r.RunPipeline(ctx(t), t, x)
					assert.Assert(t, got != nil, "%v", err)
					for _, name := range got.Order {
						tr := got.Runs[name]
						assertSucceeded(t, tr)
						checkResults(t, tr.TaskRun.Name, tr.TaskRun.Status.TaskSpec, tr.TaskRun.Status.Results)
						checkServed(t, tr.Results())
					}
					assert.NilError(t, err)
				default:
					r.Apply(ctx(t), t, o)
				}
			}
		})
	}
}

// pipelineParams are the params of the Pipeline pr names (from the
// release), or of its embedded spec.
func pipelineParams(t *testing.T, e *env, pr *v1.PipelineRun) v1.ParamSpecs {
	t.Helper()
	if pr.Spec.PipelineSpec != nil {
		return pr.Spec.PipelineSpec.Params
	}
	for _, o := range e.release {
		if p, ok := o.(*v1.Pipeline); ok && pr.Spec.PipelineRef != nil && p.Name == pr.Spec.PipelineRef.Name {
			return p.Spec.Params
		}
	}
	t.Fatalf("PipelineRun %s: no Pipeline %v in the release", pr.Name, pr.Spec.PipelineRef)
	return nil
}

// checkServed checks that every *IMAGE_DIGEST result is the digest the
// registry serves for the *IMAGE_URL result beside it.
func checkServed(t *testing.T, results map[string]string) {
	t.Helper()
	for k, digest := range results {
		if !strings.HasSuffix(k, "IMAGE_DIGEST") {
			continue
		}
		url := results[strings.TrimSuffix(k, "IMAGE_DIGEST")+"IMAGE_URL"]
		if url == "" {
			continue
		}
		ref, err := name.ParseReference(url, name.Insecure)
		assert.NilError(t, err)
		desc, err := remote.Head(ref)
		assert.NilError(t, err, "HEAD %s", url)
		assert.Check(t, is.Equal(desc.Digest.String(), digest), "%s: %s", k, url)
	}
}

// checkResults fails t unless every result spec declares has a value.
func checkResults(t *testing.T, run string, spec *v1.TaskSpec, results []v1.TaskRunResult) {
	t.Helper()
	if spec == nil {
		return
	}
	got := map[string]bool{}
	for _, r := range results {
		got[r.Name] = r.Value.StringVal != "" || len(r.Value.ArrayVal) > 0 || len(r.Value.ObjectVal) > 0
	}
	for _, r := range spec.Results {
		assert.Check(t, got[r.Name], "%s: result %s not set", run, r.Name)
	}
}

// testResolvers runs export-image taken from its released bundle
// (taskRef resolver: bundles) and from another namespace (resolver:
// cluster), and the StepAction from its bundle inside a user's Task, in
// namespaces where the release is not installed: what runs can only have
// come through Tekton's resolvers.
func testResolvers(t *testing.T, e *env) {
	installed := e.runner(t).(clusterRunner) // the release, for the cluster resolver
	bundle := func(kindName string) []v1.Param {
		ref := e.bundles[kindName]
		assert.Assert(t, ref != "", "no bundle %s in bundles.txt", kindName)
		kind, entry, _ := strings.Cut(kindName, "/")
		return v1.Params{strParam("bundle", ref), strParam("name", entry), strParam("kind", kind)}
	}
	for _, tc := range []struct {
		name string
		ref  *v1.TaskRef
	}{
		{"bundles", &v1.TaskRef{ResolverRef: v1.ResolverRef{Resolver: "bundles", Params: bundle("task/export-image")}}},
		{"cluster", &v1.TaskRef{ResolverRef: v1.ResolverRef{Resolver: "cluster", Params: v1.Params{
			strParam("kind", "task"), strParam("name", "export-image"), strParam("namespace", installed.Namespace),
		}}}},
	} {
		t.Run("export-image through the "+tc.name+" resolver", func(t *testing.T) {
			r := clusterRunner{e.cluster.Namespace(ctx(t), t, nil)}
			ws := sharedDir(t)
			writeLayout(t, filepath.Join(ws, "image"))
			r.Claim(t, "source", ws)
			tag := e.registry + "/resolvers/" + tc.name + ":latest"
			tr := taskRun("resolved", "", v1.Params{strParam("IMAGE", tag)}, claim("source", "source"))
			tr.Spec.TaskRef = tc.ref
			run := r.Run(ctx(t), t, tr)
			assertSucceeded(t, run)
			assert.Check(t, is.Equal(run.Results()["IMAGE_URL"], tag))
			checkServed(t, run.Results())
			// Tekton records where the Task came from.
			prov := run.TaskRun.Status.Provenance
			assert.Assert(t, prov != nil && prov.RefSource != nil, "no provenance of the resolved Task")
			if tc.name == "bundles" {
				d, err := name.NewDigest(e.bundles["task/export-image"], name.Insecure)
				assert.NilError(t, err)
				assert.Check(t, is.Equal("sha256:"+prov.RefSource.Digest["sha256"], d.DigestStr()))
			}
		})
	}

	t.Run("StepAction through the bundles resolver", func(t *testing.T) {
		r := clusterRunner{e.cluster.Namespace(ctx(t), t, nil)}
		tr := stepActionRun(t, e)
		tr.Spec.TaskSpec.Steps[1].Ref = &v1.Ref{ResolverRef: v1.ResolverRef{Resolver: "bundles", Params: bundle("stepaction/report-to-results")}}
		run := r.Run(ctx(t), t, tr)
		assertSucceeded(t, run)
		assert.Check(t, is.Equal(run.Results()["APP_IMAGE_URL"], e.registry+"/report2results-test:latest"))
		checkServed(t, run.Results())
	})
}

// stepActionRun is the StepAction's Catalog test (stepactions/
// report-to-results/0.1/tests/run.yaml: a step pushes with crane and writes
// /layers/report.toml, the StepAction writes APP_ results) for the tool
// image and the env's registry.
func stepActionRun(t *testing.T, e *env) *v1.TaskRun {
	t.Helper()
	repl := map[string]string{"localhost:5000": e.registry, "gcr.io/go-containerregistry/crane:debug": e.tools}
	objs := decodeObjects(t, clusterrun.Substitute(readFile(t, filepath.Join(e.root, "stepactions/report-to-results/0.1/tests/run.yaml")), repl))
	assert.Assert(t, is.Len(objs, 1))
	tr, ok := objs[0].(*v1.TaskRun)
	assert.Assert(t, ok, "tests/run.yaml holds a %T", objs[0])
	assert.Assert(t, is.Len(tr.Spec.TaskSpec.Steps, 2))
	return tr
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	assert.NilError(t, err)
	return data
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// decodeObjects decodes every document of a YAML stream strictly into its
// Tekton or Kubernetes type.
func decodeObjects(t *testing.T, stream []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct{ Kind string }
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &meta))
		var obj runtime.Object
		switch meta.Kind {
		case "":
			continue
		case "Task":
			obj = &v1.Task{}
		case "Pipeline":
			obj = &v1.Pipeline{}
		case "TaskRun":
			obj = &v1.TaskRun{}
		case "PipelineRun":
			obj = &v1.PipelineRun{}
		case "StepAction":
			obj = stepActionObject()
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		default:
			t.Fatalf("unexpected kind %s", meta.Kind)
		}
		assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), obj))
		out = append(out, obj)
	}
	return out
}

// testBuilders runs the example Tasks of docs/examples that can run here,
// each a real builder followed by the report-to-results StepAction: ko (v0.19.1,
// with this machine's Go toolchain) and buildah (Debian's 1.28), in images
// made from this machine's binaries. Each must push, and its results
// (ARTIFACT_OUTPUTS included) must name what the registry serves; Chains
// signs what ko pushed.
func testBuilders(t *testing.T, e *env) {
	t.Run("ko", func(t *testing.T) {
		goroot := goruntime.GOROOT()
		// ko as go install built it (dynamically linked: its libraries
		// too) and this machine's Go toolchain.
		koBin := koBinary(t)
		files := append(stepimage.Tree(t, goroot, "/usr/local/go"), stepimage.Dynamic(t, koBin)[1:]...)
		files = append(files, stepimage.File{Path: "/usr/local/bin/ko", Source: koBin}, stepimage.File{Path: "/tmp", Dir: true, Mode: 0o1777})
		ko := stepimage.Push(t, e.registry+"/tools/ko", files,
			stepimage.Config{Env: []string{"PATH=/usr/local/go/bin:/usr/local/bin", "GOTOOLCHAIN=local", "GOPROXY=off"}})
		base := icmd.RunCmd(icmd.Command("go", "run", "./hack/ko-base", "-insecure", e.registry+"/ko-base:builders"), icmd.Dir(e.root))
		base.Assert(t, icmd.Success)
		source := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "hello-go"},
			Data: map[string]string{
				"go.mod":  "module example.com/hello\n\ngo 1.22\n",
				"main.go": "package main\n\nfunc main() { println(\"hello from ko\") }\n",
			},
		}
		repo := e.registry + "/builders/ko-hello"
		r, run := runExample(t, e, "docs/examples/ko-build.yaml", source, v1.Params{
			strParam("KO_IMAGE", ko), strParam("IMAGE_REPO", repo), strParam("BASE_IMAGE", strings.TrimSpace(base.Stdout())),
			strParam("INSECURE_REGISTRY", "true"), strParam("INSECURE_REGISTRIES", e.registry),
		})
		assert.Check(t, is.Equal(run.Results()["IMAGE_URL"], repo))
		checkArtifactOutputs(t, run, repo)
		checkServed(t, run.Results())
		waitSigned(t, r, run.TaskRun.Name)
		checkSignedByChains(t, chainsPublicKey(t, e), repo, run.Results()["IMAGE_DIGEST"])
	})
	t.Run("buildah", func(t *testing.T) {
		busybox := stepimage.Busybox(t, e.busybox, "/bin")
		files := append(stepimage.Dynamic(t, "/usr/bin/buildah"), busybox...)
		files = append(files,
			stepimage.File{Path: "/etc/containers/policy.json", Source: writeTemp(t, `{"default":[{"type":"insecureAcceptAnything"}]}`)},
			stepimage.File{Path: "/etc/containers/registries.conf", Source: writeTemp(t, "")},
			// buildah looks the user up.
			stepimage.File{Path: "/etc/passwd", Source: writeTemp(t, "root:x:0:0:root:/root:/bin/sh\n")},
			stepimage.File{Path: "/etc/group", Source: writeTemp(t, "root:x:0:\n")},
			stepimage.File{Path: "/root", Dir: true, Mode: 0o700},
			stepimage.File{Path: "/tmp", Dir: true, Mode: 0o1777},
			stepimage.File{Path: "/var/tmp", Dir: true, Mode: 0o1777},
			stepimage.File{Path: "/run", Dir: true, Mode: 0o755})
		buildah := stepimage.Push(t, e.registry+"/tools/buildah", files, stepimage.Config{Env: []string{"PATH=/bin:/usr/bin"}})
		source := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "hello-dockerfile"},
			Data: map[string]string{
				"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
				"hello.txt":  "hello from buildah\n",
			},
		}
		tag := e.registry + "/builders/buildah-hello:1.0"
		_, run := runExample(t, e, "docs/examples/buildah-build.yaml", source, v1.Params{
			strParam("BUILDAH_IMAGE", buildah), strParam("IMAGE", tag), strParam("TLS_VERIFY", "false"),
			strParam("INSECURE_REGISTRIES", e.registry),
		})
		assert.Check(t, is.Equal(run.Results()["IMAGE_URL"], tag))
		checkArtifactOutputs(t, run, e.registry+"/builders/buildah-hello")
		checkServed(t, run.Results())
	})
}

// runExample applies the release and the example Task of file into a new
// namespace, and runs it with source (a ConfigMap) as its source
// workspace; the run must succeed.
func runExample(t *testing.T, e *env, file string, source *corev1.ConfigMap, params v1.Params) (clusterRunner, *podrun.Run) {
	t.Helper()
	r := e.runner(t, source).(clusterRunner)
	r.ApplyYAML(ctx(t), t, readFile(t, filepath.Join(e.root, file)))
	objs := decodeObjects(t, readFile(t, filepath.Join(e.root, file)))
	task, ok := objs[0].(*v1.Task)
	assert.Assert(t, ok, "%s holds a %T", file, objs[0])
	tr := taskRun(task.Name, task.Name, params, v1.WorkspaceBinding{Name: "source",
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: source.Name}}})
	run := r.Run(ctx(t), t, tr)
	assertSucceeded(t, run)
	return r, run
}

// checkArtifactOutputs: the ARTIFACT_OUTPUTS object result names repo and
// the IMAGE_DIGEST result, as a build artifact.
func checkArtifactOutputs(t *testing.T, run *podrun.Run, repo string) {
	t.Helper()
	for _, r := range run.TaskRun.Status.Results {
		if r.Name == "ARTIFACT_OUTPUTS" {
			assert.Check(t, is.DeepEqual(r.Value.ObjectVal, map[string]string{
				"uri": repo, "digest": run.Results()["IMAGE_DIGEST"], "isBuildArtifact": "true",
			}))
			return
		}
	}
	t.Errorf("TaskRun %s has no ARTIFACT_OUTPUTS result: %+v", run.TaskRun.Name, run.TaskRun.Status.Results)
}

// writeTemp writes content to a temporary file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}
