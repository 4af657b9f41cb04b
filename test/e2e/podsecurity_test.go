//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psa "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// restrictedLabels make a namespace enforce the restricted Pod Security
// profile: the API server's PodSecurity admission refuses any Pod that
// does not meet it.
var restrictedLabels = map[string]string{
	psa.EnforceLevelLabel:   string(psa.LevelRestricted),
	psa.EnforceVersionLabel: psa.VersionLatest,
}

// testPodSecurity checks the Tasks against the restricted Pod Security
// profile two ways. (a) Real admission: in a namespace that enforces it,
// the Pods Tekton's controller creates for what needs no network
// (report-to-results offline on a report in a workspace, and the
// StepAction inside a user's Task) are admitted by the API server and
// succeed. (b) What must reach a registry runs with hostNetwork, which the
// profile forbids: the Pod Tekton's controller created for export-image
// and report-to-results, with only hostNetwork removed, passes the
// profile as k8s.io/pod-security-admission/policy (v0.34.3, the API
// server's own) evaluates it.
func testPodSecurity(t *testing.T, e *env) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	assert.NilError(t, err)
	restricted := psa.LevelVersion{Level: psa.LevelRestricted, Version: psa.LatestVersion()}
	evaluate := func(p *corev1.Pod) *policy.AggregateCheckResult {
		r := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &p.ObjectMeta, &p.Spec))
		return &r
	}

	t.Run("admitted in a restricted namespace", func(t *testing.T) {
		ns := e.cluster.Namespace(ctx(t), t, restrictedLabels)
		ns.HostNetwork = false
		ns.ApplyYAML(ctx(t), t, e.releaseYAML)
		r := clusterRunner{ns}

		// The namespace does enforce it: a Pod with hostNetwork is refused.
		_, err := ns.Kube.CoreV1().Pods(ns.Namespace).Create(ctx(t), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "host-network"},
			Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: e.tools}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		assert.ErrorContains(t, err, `violates PodSecurity "restricted:latest"`)

		// report-to-results -offline on a report (ours: it carries the
		// media type and size, so no registry is asked).
		ws := sharedDir(t)
		digest := "sha256:" + strings.Repeat("ab", 32)
		tag := "registry.example.com/team/offline:1.0"
		report := fmt.Sprintf("[image]\n  tags = [%q]\n  digest = %q\n  manifest_size = 1234\n  media_type = \"application/vnd.oci.image.manifest.v1+json\"\n", tag, digest)
		assert.NilError(t, os.WriteFile(filepath.Join(ws, "report.toml"), []byte(report), 0o644))
		r.Claim(t, "source", ws)
		// Tekton ignores a param a Task does not declare: make sure this
		// one is the Task's.
		declared := false
		for _, p := range e.task(t, "report-to-results").Params {
			declared = declared || p.Name == "OFFLINE"
		}
		assert.Assert(t, declared, "report-to-results declares no OFFLINE param")
		run := r.Run(ctx(t), t, taskRun("offline", "report-to-results", v1.Params{strParam("OFFLINE", "true")}, claim("source", "source")))
		assertSucceeded(t, run)
		assert.Check(t, is.Equal(run.Results()["IMAGE_DIGEST"], digest))
		assert.Check(t, is.Equal(run.Results()["IMAGE_URL"], tag))
		assert.Check(t, !run.Pod.Spec.HostNetwork)
		assert.Check(t, evaluate(run.Pod).Allowed, "%s", evaluate(run.Pod).ForbiddenDetail())

		// The StepAction inside a user's Task: a step of the user's writes
		// the report, the StepAction turns it into results, offline.
		yes, no, uid := true, false, int64(65532)
		userStep := v1.Step{
			Name:  "export",
			Image: e.tools,
			Script: fmt.Sprintf("#!/busybox/sh\nset -eu\nprintf '[image]\\n  tags = [\"%s\"]\\n  digest = \"%s\"\\n' > /layers/report.toml\n",
				tag, digest),
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                &uid, // the tool image runs as root otherwise
				RunAsNonRoot:             &yes,
				AllowPrivilegeEscalation: &no,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		}
		tr := stepActionRun(t, e)
		tr.Spec.TaskSpec.Steps[0] = userStep
		run = r.Run(ctx(t), t, tr)
		assertSucceeded(t, run)
		assert.Check(t, is.Equal(run.Results()["APP_IMAGE_DIGEST"], digest))
		assert.Check(t, is.Equal(run.Results()["APP_IMAGE_URL"], tag))
		assert.Check(t, evaluate(run.Pod).Allowed, "%s", evaluate(run.Pod).ForbiddenDetail())
	})

	t.Run("registry Tasks pass without hostNetwork", func(t *testing.T) {
		r := e.runner(t)
		ws := sharedDir(t)
		writeLayout(t, filepath.Join(ws, "image"))
		r.Claim(t, "source", ws)
		tag := e.registry + "/restricted/app:latest"
		for _, tr := range []*v1.TaskRun{
			taskRun("export", "export-image", v1.Params{strParam("IMAGE", tag)}, claim("source", "source")),
			taskRun("results", "report-to-results", nil, claim("source", "source")),
		} {
			run := r.Run(ctx(t), t, tr)
			assertSucceeded(t, run)
			p := run.Pod.DeepCopy()
			assert.Assert(t, p.Spec.HostNetwork, "the run needed hostNetwork to reach %s", e.registry)
			with := evaluate(p)
			assert.Check(t, !with.Allowed && with.ForbiddenReason() == "host namespaces",
				"%s with hostNetwork: want forbidden for host namespaces only, got allowed=%v: %s", tr.Name, with.Allowed, with.ForbiddenDetail())
			p.Spec.HostNetwork = false
			without := evaluate(p)
			assert.Check(t, without.Allowed, "%s without hostNetwork: %s: %s", tr.Name, without.ForbiddenReason(), without.ForbiddenDetail())
		}
	})
}
