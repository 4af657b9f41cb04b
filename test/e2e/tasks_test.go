//go:build e2e

// Package e2e runs the Catalog Tasks, the StepAction and a Pipeline of this
// repository as Tekton runs them (podrun: Tekton's controller code builds
// the Pod, Docker runs it, Tekton's code reads the status back), with the
// step images built by ko from this repository, against the real
// Distribution registry. See README.md.
package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/result"
	"github.com/tektoncd/pipeline/pkg/termination"
	"go.uber.org/zap"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/test/distribution"
	"github.com/exportreport/exportreport/test/e2e/podrun"
	"github.com/exportreport/exportreport/test/e2e/stepimage"
)

// TestTasks builds the images once and runs every case against them with
// podrun; TestCluster runs the same cases on a real cluster.
func TestTasks(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	t.Logf("environment ready in %s", time.Since(start).Round(time.Second))
	runCases(t, e)
}

// runCases runs every case with e's runner.
func runCases(t *testing.T, e *env) {
	t.Run("export-image to a plain registry", func(t *testing.T) { testExportPlain(t, e) })
	t.Run("unreachable registry fails the TaskRun", func(t *testing.T) { testUnreachable(t, e) })
	t.Run("export-image to TLS and htpasswd", func(t *testing.T) { testExportAuth(t, e) })
	t.Run("non-root with a read-only root filesystem", func(t *testing.T) { testRestricted(t, e) })
	t.Run("report-to-results on a lifecycle report", func(t *testing.T) { testLifecycleReport(t, e) })
	t.Run("StepAction in a user's Task", func(t *testing.T) { testStepAction(t, e) })
	t.Run("build-export-consume pipeline", func(t *testing.T) { testPipeline(t, e) })
}

func strParam(name, value string) v1.Param {
	return v1.Param{Name: name, Value: *v1.NewStructuredValues(value)}
}

func arrayParam(name string, values ...string) v1.Param {
	return v1.Param{Name: name, Value: v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: append([]string{}, values...)}}
}

func claim(workspace, claimName string) v1.WorkspaceBinding {
	return v1.WorkspaceBinding{Name: workspace, PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName}}
}

func taskRun(name, task string, params v1.Params, ws ...v1.WorkspaceBinding) *v1.TaskRun {
	return &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: podrun.Namespace},
		Spec: v1.TaskRunSpec{
			TaskRef:    &v1.TaskRef{Name: task},
			Params:     params,
			Workspaces: ws,
		},
	}
}

// assertSucceeded fails t, with every container's log, unless the TaskRun
// succeeded.
func assertSucceeded(t *testing.T, run *podrun.Run) {
	t.Helper()
	c := run.Succeeded()
	assert.Assert(t, c != nil && c.IsTrue(), "TaskRun %s did not succeed: %+v\nlogs:\n%s", run.TaskRun.Name, c, run.AllLogs())
}

// assertServedDigest checks that the registry serves, for every tag, the
// manifest whose sha256 is digest (skopeo inspect --raw).
func assertServedDigest(t *testing.T, tags []string, digest string, skopeoArgs ...string) {
	t.Helper()
	for _, tag := range tags {
		assert.Check(t, is.Equal(skopeoDigest(t, "docker://"+tag, skopeoArgs...), digest), "skopeo inspect --raw docker://%s", tag)
	}
}

func imagesResult(tags []string, digest string) string {
	lines := make([]string, len(tags))
	for i, tag := range tags {
		lines[i] = tag + "@" + digest
	}
	return strings.Join(lines, "\n")
}

// Case 1: export-image pushes an OCI layout from the workspace to a plain
// registry; report-to-results then writes index.json into that layout.
func testExportPlain(t *testing.T, e *env) {
	reg := distribution.Start(t)
	ws := sharedDir(t)
	writeLayout(t, filepath.Join(ws, "image"))
	tags := []string{
		reg.Host() + "/team/app:latest",
		reg.Host() + "/team/app:1.0",
		reg.Host() + "/mirror/app:1.0",
	}
	r := e.runner(t)
	r.Claim(t, "source", ws)

	run := r.Run(ctx(t), t, taskRun("export", "export-image", v1.Params{
		strParam("IMAGE", tags[0]),
		arrayParam("EXTRA_TAGS", tags[1:]...),
		strParam("INSECURE_REGISTRIES", reg.Host()),
	}, claim("source", "source")))
	assertSucceeded(t, run)
	res := run.Results()
	digest := res["IMAGE_DIGEST"]
	assert.Assert(t, strings.HasPrefix(digest, "sha256:") && len(digest) == 71, "IMAGE_DIGEST %q", digest)
	assert.Check(t, is.Equal(res["IMAGE_URL"], tags[0]))
	assert.Check(t, is.Equal(res["IMAGES"], imagesResult(tags, digest)))
	assertServedDigest(t, tags, digest, "--tls-verify=false")

	rep, err := report.Read(filepath.Join(ws, "report.toml"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(rep.Image.Tags, tags))
	assert.Check(t, is.Equal(rep.Image.Digest, digest))

	// The next task: report-to-results writes index.json into the source
	// layout (which holds the blobs), so skopeo reads the image by tag.
	run = r.Run(ctx(t), t, taskRun("layout", "report-to-results", v1.Params{
		strParam("LAYOUT_SUBPATH", "image"),
		strParam("INSECURE_REGISTRIES", reg.Host()),
	}, claim("source", "source")))
	assertSucceeded(t, run)
	assert.Check(t, is.DeepEqual(run.Results(), res))
	assert.Check(t, is.Equal(skopeoDigest(t, "oci:"+filepath.Join(ws, "image")+":latest"), digest))
}

// Case 6: a registry nobody listens on: the export step fails with one
// line saying why, the results step is skipped, the TaskRun fails and has
// no results, and no report is left in the workspace.
func testUnreachable(t *testing.T, e *env) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	host := l.Addr().String()
	assert.NilError(t, l.Close()) // nothing listens there now

	ws := sharedDir(t)
	writeLayout(t, filepath.Join(ws, "image"))
	r := e.runner(t)
	r.Claim(t, "source", ws)
	run := r.Run(ctx(t), t, taskRun("unreachable", "export-image", v1.Params{
		strParam("IMAGE", host+"/team/app:latest"),
		strParam("INSECURE_REGISTRIES", host),
	}, claim("source", "source")))

	c := run.Succeeded()
	assert.Assert(t, c != nil && c.IsFalse(), "TaskRun should fail: %+v\nlogs:\n%s", c, run.AllLogs())
	assert.Check(t, is.Equal(c.Reason, string(v1.TaskRunReasonStepFailed)))
	assert.Check(t, is.Contains(c.Message, `"step-export" exited with code 1`))
	assert.Check(t, is.Len(run.TaskRun.Status.Results, 0), "results: %v", run.TaskRun.Status.Results)

	export := run.Step("export")
	assert.Assert(t, export != nil && export.Terminated != nil, "no terminated state for step export: %+v", export)
	assert.Check(t, is.Equal(export.Terminated.ExitCode, int32(1)))
	// What Tekton's entrypoint wrote to /tekton/termination and the
	// controller kept: no result.
	assert.Check(t, is.Len(export.Results, 0))
	var msg string
	for _, cs := range run.Pod.Status.ContainerStatuses {
		if cs.Name == "step-export" && cs.State.Terminated != nil {
			msg = cs.State.Terminated.Message
		}
	}
	assert.Check(t, !strings.Contains(msg, "IMAGE_DIGEST"), "termination message %s", msg)
	results := run.Step("results")
	assert.Assert(t, results != nil && results.Terminated != nil, "no terminated state for step results: %+v", results)
	assert.Check(t, is.Equal(results.TerminationReason, "Skipped"), "the results step after a failed step: %+v", results)

	// The reason, in the step's termination message as the controller
	// leaves it in the TaskRun status (export-step -failure-message wrote
	// it to /tekton/termination, Tekton's entrypoint appended its own
	// entries, pod.MakeTaskRunStatus kept ours and dropped its internal
	// ones): one entry, one line naming the registry and the cause, the
	// same line as the step's log.
	entries, err := termination.ParseMessage(zap.NewNop().Sugar(), export.Terminated.Message)
	assert.NilError(t, err, "step termination message %q", export.Terminated.Message)
	assert.Assert(t, is.Len(entries, 1), "step termination message %q", export.Terminated.Message)
	reason := entries[0]
	assert.Check(t, is.Equal(reason.Key, "error"))
	assert.Check(t, is.Equal(reason.ResultType, result.ResultType(result.UnknownResultType)))
	assert.Check(t, !strings.ContainsAny(reason.Value, "\r\n"), "reason: %q", reason.Value)
	assert.Check(t, is.Contains(reason.Value, "push "+host+"/team/app:latest"), "reason: %q", reason.Value)
	assert.Check(t, is.Contains(reason.Value, "connection refused"), "reason: %q", reason.Value)
	t.Logf("export step's termination message: %s", export.Terminated.Message)

	log := run.Logs["step-export"]
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	assert.Check(t, is.Len(lines, 1), "export step log: %q", log)
	assert.Check(t, is.Equal(lines[len(lines)-1], reason.Value), "the log's line")

	_, err = os.Stat(filepath.Join(ws, "report.toml"))
	assert.Check(t, os.IsNotExist(err), "a failed export must leave no report: %v", err)
}

// Case 2: a TLS registry with htpasswd auth, credentials given the two
// Tekton ways: a Secret bound to the dockerconfig workspace (config.json,
// and the CA), or a basic-auth Secret annotated tekton.dev/docker-0 on the
// TaskRun's ServiceAccount, which Tekton's entrypoint writes to
// $HOME/.docker/config.json (HOME must then be writable: the Tasks set it to
// /tekton/home, an emptyDir Tekton mounts in every step, and no podTemplate
// sets it here). The CA reaches the steps through SSL_CERT_FILE (podTemplate
// env). No credential may appear in any
// container's log or in the TaskRun's status.
func testExportAuth(t *testing.T, e *env) {
	const user, password = "e2e-pusher", "pa55-e2e-Secret!"
	reg := distribution.Start(t, distribution.WithTLS(), distribution.WithBasicAuth(user, password))
	ca, err := os.ReadFile(reg.CAFile)
	assert.NilError(t, err)
	dockerConfig, err := os.ReadFile(filepath.Join(reg.DockerConfig(t), "config.json"))
	assert.NilError(t, err)
	workspaceSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry-dockerconfig", Namespace: podrun.Namespace},
		Data:       map[string][]byte{"config.json": dockerConfig, "ca.crt": ca},
	}
	basicAuth := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry-basic-auth", Namespace: podrun.Namespace,
			Annotations: map[string]string{"tekton.dev/docker-0": "https://" + reg.Host()}},
		Type: corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{"username": []byte(user), "password": []byte(password)},
	}
	pusher := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "pusher", Namespace: podrun.Namespace},
		Secrets:    []corev1.ObjectReference{{Name: "registry-basic-auth"}},
	}

	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		sa      string
		ws      []v1.WorkspaceBinding
		env     []corev1.EnvVar
		// wantArg is an argument Tekton's credential initialisation
		// must give the step's entrypoint.
		wantArg string
	}{
		{
			name:    "dockerconfig workspace",
			objects: []runtime.Object{workspaceSecret},
			ws:      []v1.WorkspaceBinding{{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: "registry-dockerconfig"}}},
			env:     []corev1.EnvVar{{Name: "SSL_CERT_FILE", Value: "/workspace/dockerconfig/ca.crt"}},
		},
		{
			name:    "service account secret",
			objects: []runtime.Object{basicAuth, pusher},
			sa:      "pusher",
			// No HOME here: the Tasks set HOME=/tekton/home themselves,
			// so Tekton's entrypoint can copy the credentials there.
			env:     []corev1.EnvVar{{Name: "SSL_CERT_FILE", Value: "/workspace/source/ca.crt"}},
			wantArg: "-basic-docker=registry-basic-auth=https://" + reg.Host(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := sharedDir(t)
			writeLayout(t, filepath.Join(ws, "image"))
			assert.NilError(t, os.WriteFile(filepath.Join(ws, "ca.crt"), ca, 0o644))
			repo := reg.Host() + "/team/" + strings.ReplaceAll(tc.name, " ", "-")
			tags := []string{repo + ":latest", repo + ":1.0"}
			r := e.runner(t, tc.objects...)
			r.Claim(t, "source", ws)
			tr := taskRun("auth", "export-image", v1.Params{strParam("IMAGE", tags[0]), arrayParam("EXTRA_TAGS", tags[1:]...)},
				append([]v1.WorkspaceBinding{claim("source", "source")}, tc.ws...)...)
			tr.Spec.ServiceAccountName = tc.sa
			tr.Spec.PodTemplate = &pod.Template{Env: tc.env}

			run := r.Run(ctx(t), t, tr)
			assertSucceeded(t, run)
			res := run.Results()
			assert.Check(t, is.Equal(res["IMAGE_URL"], tags[0]))
			assertServedDigest(t, tags, res["IMAGE_DIGEST"], "--cert-dir", reg.CertDir, "--creds", user+":"+password)
			if tc.wantArg != "" {
				assert.Check(t, is.Contains(run.Pod.Spec.Containers[0].Args, tc.wantArg))
			}

			status, err := json.Marshal(run.TaskRun.Status)
			assert.NilError(t, err)
			logs := run.AllLogs()
			assert.Assert(t, strings.Contains(logs, "--- step-export"), "no log of the export step")
			for _, s := range []string{password, reg.Auth(), "Authorization", "authorization:"} {
				assert.Check(t, !strings.Contains(logs, s), "a log shows %q:\n%s", s, logs)
				assert.Check(t, !strings.Contains(string(status), s), "the TaskRun status shows %q", s)
			}
		})
	}
}

// task is the spec of the release's Task NAME (images pinned by digest).
func (e *env) task(t *testing.T, name string) v1.TaskSpec {
	t.Helper()
	for _, o := range e.release {
		if task, ok := o.(*v1.Task); ok && task.Name == name {
			return *task.Spec.DeepCopy()
		}
	}
	t.Fatalf("no Task %s in the release", name)
	return v1.TaskSpec{}
}

// Case 3: every container runs as UID 65532 with a read-only root
// filesystem: the Pod's securityContext (podTemplate) sets the user, group
// and fsGroup and runAsNonRoot; the steps get readOnlyRootFilesystem added
// to the Task's own stepTemplate (export-image's spec, embedded), and
// Tekton's own init containers from the feature flags set-security-context
// and set-security-context-read-only-root-filesystem (podrun: set for the
// run; the cluster: set by hack/start-cluster). The steps write only to the
// workspace and /tekton/results. How each container ran comes from Docker
// (podrun) or the node's runtime through CRI (cluster).
func testRestricted(t *testing.T, e *env) {
	reg := distribution.Start(t)
	ws := sharedDir(t)
	writeLayout(t, filepath.Join(ws, "image"))
	tags := []string{reg.Host() + "/team/restricted:latest"}

	r := e.runner(t)
	r.Claim(t, "source", ws)
	if pr, ok := r.(podRunner); ok {
		flags := config.DefaultFeatureFlags.DeepCopy()
		flags.SetSecurityContext = true
		flags.SetSecurityContextReadOnlyRootFilesystem = true
		pr.FeatureFlags = flags
	} else {
		e.requireFeatureFlags(t, map[string]string{
			"set-security-context": "true", "set-security-context-read-only-root-filesystem": "true",
		})
	}

	spec := e.task(t, "export-image")
	yes, uid := true, int64(65532)
	// The Task's stepTemplate (restricted securityContext, HOME), with a
	// read-only root filesystem and the user added.
	assert.Assert(t, spec.StepTemplate != nil && spec.StepTemplate.SecurityContext != nil, "export-image has no stepTemplate securityContext")
	spec.StepTemplate.SecurityContext.RunAsUser = &uid
	spec.StepTemplate.SecurityContext.ReadOnlyRootFilesystem = &yes
	tr := taskRun("restricted", "", v1.Params{
		strParam("IMAGE", tags[0]),
		strParam("INSECURE_REGISTRIES", reg.Host()),
	}, claim("source", "source"))
	tr.Spec.TaskRef = nil
	tr.Spec.TaskSpec = &spec
	tr.Spec.PodTemplate = &pod.Template{SecurityContext: &corev1.PodSecurityContext{
		RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid, RunAsNonRoot: &yes,
	}}

	run := r.Run(ctx(t), t, tr)
	assertSucceeded(t, run)
	assertServedDigest(t, tags, run.Results()["IMAGE_DIGEST"], "--tls-verify=false")

	assert.Check(t, is.Len(run.Engine, 3), "containers: %v", run.Engine)
	for name, c := range run.Engine {
		assert.Check(t, is.Equal(c.User, "65532:65532"), "%s runs as %q", name, c.User)
		assert.Check(t, c.ReadonlyRootfs, "%s has a writable root filesystem", name)
		assert.Check(t, is.DeepEqual(c.GroupAdd, []string{"65532"}), "%s supplementary groups", name)
	}
	info, err := os.Stat(filepath.Join(ws, "report.toml"))
	assert.NilError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	assert.Check(t, is.Equal(st.Uid, uint32(65532)), "report.toml owner")
}

// pushRandom pushes a random image with OCI media types to every tag and
// returns its digest and raw manifest.
func pushRandom(t *testing.T, reg *distribution.Registry, tags ...string) (string, []byte) {
	t.Helper()
	img, err := random.Image(1024, 1)
	assert.NilError(t, err)
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, tag := range tags {
		ref, err := name.ParseReference(tag)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(ref, img, reg.RemoteOptions()...))
	}
	d, err := img.Digest()
	assert.NilError(t, err)
	raw, err := img.RawManifest()
	assert.NilError(t, err)
	return d.String(), raw
}

// Case 4a: report-to-results on a report in the form the Buildpacks
// lifecycle writes (the fixture pkg/report/testdata/lifecycle/registry.toml:
// [build] BOM, manifest-size, no media type), pointing at an image really
// pushed: the results name it, and index.json gets each descriptor's media
// type and size from one HEAD request.
func testLifecycleReport(t *testing.T, e *env) {
	reg := distribution.Start(t)
	tags := []string{reg.Host() + "/team/app:latest", reg.Host() + "/team/app:1.4.2"}
	digest, raw := pushRandom(t, reg, tags...)

	fixture, err := os.ReadFile(filepath.Join(e.root, "pkg", "report", "testdata", "lifecycle", "registry.toml"))
	assert.NilError(t, err)
	text := strings.ReplaceAll(string(fixture), "registry.example.com/team/app", reg.Host()+"/team/app")
	text = regexp.MustCompile(`digest = "sha256:[0-9a-f]{64}"`).ReplaceAllString(text, `digest = "`+digest+`"`)
	text = regexp.MustCompile(`manifest-size = \d+`).ReplaceAllString(text, "manifest-size = "+strconv.Itoa(len(raw)))
	assert.Assert(t, strings.Contains(text, "[build]") && !strings.Contains(text, "media_type"), "not a lifecycle report:\n%s", text)
	ws := sharedDir(t)
	assert.NilError(t, os.WriteFile(filepath.Join(ws, "report.toml"), []byte(text), 0o644))

	r := e.runner(t)
	r.Claim(t, "source", ws)
	run := r.Run(ctx(t), t, taskRun("lifecycle", "report-to-results", v1.Params{
		strParam("INSECURE_REGISTRIES", reg.Host()),
	}, claim("source", "source")))
	assertSucceeded(t, run)
	res := run.Results()
	assert.Check(t, is.Equal(res["IMAGE_DIGEST"], digest))
	assert.Check(t, is.Equal(res["IMAGE_URL"], tags[0]))
	assert.Check(t, is.Equal(res["IMAGES"], imagesResult(tags, digest)))
	assertServedDigest(t, tags, digest, "--tls-verify=false")

	idx, err := layout.ImageIndexFromPath(filepath.Join(ws, "layout"))
	assert.NilError(t, err)
	m, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Assert(t, is.Len(m.Manifests, len(tags)))
	for i, d := range m.Manifests {
		assert.Check(t, is.Equal(d.Digest.String(), digest))
		assert.Check(t, is.Equal(d.Size, int64(len(raw))))
		assert.Check(t, is.Equal(d.MediaType, types.OCIManifestSchema1), "media type from the HEAD request")
		assert.Check(t, is.Equal(d.Annotations["org.opencontainers.image.ref.name"], tags[i][strings.LastIndex(tags[i], ":")+1:]))
	}
}

// Case 4b: the StepAction inside a user's own Task, as its Catalog test
// (stepactions/report-to-results/0.1/tests/run.yaml) has it: a step pushes an image
// with crane and writes /layers/report.toml, and the step that references
// the StepAction (resolved by Tekton's code) writes the Task's
// APP_-prefixed results. Only the crane image and the registry host differ.
func testStepAction(t *testing.T, e *env) {
	reg := distribution.Start(t)
	var tr v1.TaskRun
	decodeFile(t, e, "stepactions/report-to-results/0.1/tests/run.yaml", &tr)
	tr.Namespace = podrun.Namespace
	assert.Assert(t, is.Len(tr.Spec.TaskSpec.Steps, 2))
	assert.Equal(t, tr.Spec.TaskSpec.Steps[1].Ref.Name, "report-to-results")
	export := &tr.Spec.TaskSpec.Steps[0]
	assert.Equal(t, export.Image, "gcr.io/go-containerregistry/crane:debug")
	export.Image = e.tools
	assert.Assert(t, strings.Contains(export.Script, "localhost:5000"))
	export.Script = strings.ReplaceAll(export.Script, "localhost:5000", reg.Host())

	run := e.runner(t).Run(ctx(t), t, &tr)
	assertSucceeded(t, run)
	res := run.Results()
	tag := reg.Host() + "/report2results-test:latest"
	digest := skopeoDigest(t, "docker://"+tag, "--tls-verify=false")
	assert.Check(t, is.Equal(res["APP_IMAGE_DIGEST"], digest))
	assert.Check(t, is.Equal(res["APP_IMAGE_URL"], tag))
	assert.Check(t, is.Equal(res["APP_IMAGES"], tag+"@"+digest))
	// The StepAction's step ran the report2results image of the release.
	assert.Check(t, is.Contains(run.Pod.Spec.Containers[1].Image, "/exportreport/report2results@sha256:"))
}

// Case 5: the build-export-consume Pipeline of the release. The build
// task's kaniko is
// replaced, through the BUILDER_IMAGE param, by fakekaniko (same flags,
// writes the tarball; its image has an entrypoint, which Tekton's entrypoint
// lookup reads from the registry since the step has no command), the
// consumer's crane:debug by an image with crane and busybox
// (CONSUMER_IMAGE). The consumer must pull exactly the digest export
// handed it: its TaskRun's params (resolved by Tekton's result reference
// code), the registry's log and the pulled layout all say so.
func testPipeline(t *testing.T, e *env) {
	reg := distribution.Start(t)
	kaniko := stepimage.GoBuild(t, ".", "./fakekaniko")
	builder := stepimage.Push(t, e.registry+"/tools/fakekaniko", []stepimage.File{{Path: "/kaniko/executor", Source: kaniko}},
		stepimage.Config{Entrypoint: []string{"/kaniko/executor"}, User: "65532"})

	buildContext := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "build-context", Namespace: podrun.Namespace},
		Data: map[string]string{
			"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
			"hello.txt":  "hello from the e2e pipeline\n",
		},
	}
	out := sharedDir(t)
	r := e.runner(t, buildContext)
	r.Claim(t, "output", out)

	tags := []string{reg.Host() + "/team/built:latest", reg.Host() + "/team/built:1.0"}
	pr := &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: "bec", Namespace: podrun.Namespace},
		Spec: v1.PipelineRunSpec{
			PipelineRef: &v1.PipelineRef{Name: "build-export-consume"},
			Params: v1.Params{
				strParam("IMAGE", tags[0]),
				arrayParam("EXTRA_TAGS", tags[1:]...),
				strParam("BUILDER_IMAGE", builder),
				strParam("CONSUMER_IMAGE", e.tools),
				strParam("INSECURE_REGISTRIES", reg.Host()),
			},
			Workspaces: []v1.WorkspaceBinding{
				{Name: "context", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "build-context"}}},
				claim("output", "output"),
			},
		},
	}
	got, err := r.RunPipeline(ctx(t), t, pr)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Order, []string{"build", "export", "consume"})
	for _, name := range got.Order {
		assertSucceeded(t, got.Runs[name])
	}
	// The build step had no command: Tekton looked its entrypoint up in
	// the registry and hands it to its entrypoint binary.
	var commands string
	for _, env := range got.Runs["build"].Pod.Spec.Containers[0].Env {
		if env.Name == "TEKTON_PLATFORM_COMMANDS" {
			commands = env.Value
		}
	}
	assert.Check(t, is.Equal(commands, `{"linux/amd64":["/kaniko/executor"]}`))

	res := got.Runs["export"].Results()
	digest := res["IMAGE_DIGEST"]
	assert.Check(t, is.Equal(res["IMAGE_URL"], tags[0]))
	assertServedDigest(t, tags, digest, "--tls-verify=false")

	consume := got.Runs["consume"]
	params := map[string]string{}
	for _, p := range consume.TaskRun.Spec.Params {
		params[p.Name] = p.Value.StringVal
	}
	assert.Check(t, is.Equal(params["IMAGE_DIGEST"], digest))
	assert.Check(t, is.Equal(params["IMAGE_URL"], tags[0]))
	assert.Check(t, is.Contains(consume.Logs["step-pull-by-digest"], "pulled "+tags[0]+"@"+digest+" into /workspace/output/pulled"))
	regLog, err := os.ReadFile(filepath.Join(reg.Dir(), "registry.log"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(regLog), "http.request.method=GET http.request.remoteaddr="), "registry log")
	assert.Check(t, regexp.MustCompile(`http\.request\.method=GET [^\n]*http\.request\.uri="/v2/team/built/manifests/`+regexp.QuoteMeta(digest)+`"`).Match(regLog),
		"the registry served no GET of the manifest by digest %s", digest)

	pulled, err := layout.ImageIndexFromPath(filepath.Join(out, "pulled"))
	assert.NilError(t, err)
	m, err := pulled.IndexManifest()
	assert.NilError(t, err)
	assert.Assert(t, is.Len(m.Manifests, 1))
	assert.Check(t, is.Equal(m.Manifests[0].Digest.String(), digest))
}
