package chains

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/tektoncd/chains/pkg/chains/formats"
	slsav1 "github.com/tektoncd/chains/pkg/chains/formats/slsa/v1"
	"github.com/tektoncd/chains/pkg/chains/formats/slsa/v2alpha3"
	"github.com/tektoncd/chains/pkg/chains/formats/slsa/v2alpha4"
	"github.com/tektoncd/chains/pkg/chains/objects"
	"github.com/tektoncd/chains/pkg/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// pushedRepo is the repository every input below names.
const pushedRepo = "registry.example.com/team/app"

// inputs writes, into dir, what each kind of builder writes about one image
// pushed as pushedRepo:1.0 (and :latest) with digest, and returns the
// -from flags (and -image) that read it.
func inputs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	// A real layout holding one image whose digest stands for the pushed one.
	img, err := random.Image(64, 1)
	assert.NilError(t, err)
	lay := filepath.Join(dir, "layout")
	p, err := layout.Write(lay, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1.0"})))
	layoutDigest, err := img.Digest()
	assert.NilError(t, err)
	assert.Equal(t, layoutDigest.String() != "", true)

	return map[string][]string{
		"report":                   {"-from=report:" + write("report.toml", fmt.Sprintf("[image]\ntags = [%q, %q]\ndigest = %q\n", pushedRepo+":1.0", pushedRepo+":latest", digest))},
		"refs (ko, crane, kaniko)": {"-from=refs:" + write("refs", fmt.Sprintf("%s:1.0@%s\n%s:latest@%s\n", pushedRepo, digest, pushedRepo, digest))},
		"digest (kaniko, buildah, podman, skopeo)": {"-from=digest:" + write("digest", digest), "-image=" + pushedRepo + ":1.0"},
		"buildx": {"-from=buildx:" + write("buildx.json", fmt.Sprintf(`{"containerimage.digest":%q,"image.name":"%s:1.0,%s:latest"}`, digest, pushedRepo, pushedRepo))},
		"jib":    {"-from=jib:" + write("jib-image.json", fmt.Sprintf(`{"image":"%s:1.0","imageDigest":%q,"tags":["1.0","latest"]}`, pushedRepo, digest))},
		"auto":   {"-from=auto:" + filepath.Join(dir, "buildx.json")},
		// The layout's own digest: what Chains must name is what it holds.
		"oci-layout": {"-from=oci-layout:" + lay, "-image=" + pushedRepo, "-primary=" + pushedRepo + ":1.0", "#digest=" + layoutDigest.String()},
	}
}

// runFrom runs report2results on what a builder wrote, asking for every
// result the Chains formatters read.
func runFrom(t *testing.T, bin string, args ...string) []v1.TaskRunResult {
	t.Helper()
	return resultsOf(t, bin, append([]string{"-results=IMAGE_DIGEST,IMAGE_URL,IMAGES,ARTIFACT_OUTPUTS"}, args...)...)
}

// resultsOf runs report2results (offline) with args and returns the
// results it wrote as a TaskRun's status carries them: ARTIFACT_OUTPUTS as
// an object.
func resultsOf(t *testing.T, bin string, args ...string) []v1.TaskRunResult {
	t.Helper()
	resultsDir := filepath.Join(t.TempDir(), "results")
	assert.NilError(t, os.Mkdir(resultsDir, 0o755))
	cmd := exec.Command(bin, append([]string{"-results-dir=" + resultsDir, "-offline"}, args...)...)
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "report2results %v: %s", args, out)
	entries, err := os.ReadDir(resultsDir)
	assert.NilError(t, err)
	var results []v1.TaskRunResult
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(resultsDir, e.Name()))
		assert.NilError(t, err)
		r := v1.TaskRunResult{Name: e.Name(), Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues(string(data))}
		if strings.HasSuffix(e.Name(), "ARTIFACT_OUTPUTS") {
			var obj map[string]string
			assert.NilError(t, json.Unmarshal(data, &obj), "%s: %s", e.Name(), data)
			r.Type, r.Value = v1.ResultsTypeObject, *v1.NewObject(obj)
		}
		results = append(results, r)
	}
	return results
}

// statementSubjects runs a Chains formatter on tr and returns the
// subjects of the in-toto statement it makes, as "name@sha256:hex".
func statementSubjects(t *testing.T, ctx context.Context, f formats.Payloader, tr *v1.TaskRun) []string {
	t.Helper()
	payload, err := f.CreatePayload(ctx, objects.NewTaskRunObjectV1(tr))
	assert.NilError(t, err)
	data, err := json.Marshal(payload)
	assert.NilError(t, err)
	var st struct {
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	assert.NilError(t, json.Unmarshal(data, &st))
	var got []string
	for _, s := range st.Subject {
		for alg, hex := range s.Digest {
			got = append(got, s.Name+"@"+alg+":"+hex)
		}
	}
	sort.Strings(got)
	return got
}

// TestChainsFormattersOnEveryInput: for what each kind of builder writes,
// the results report2results makes are what Chains' own formatters take as
// exactly one subject, the pushed repository and digest: in-toto (slsa/v1),
// slsa/v2alpha3 and slsa/v2alpha4 (which reads only ARTIFACT_OUTPUTS); for
// v2alpha4 also with the results as step results of the StepAction inside
// a user's Task; and the OCI signer signs that image.
func TestChainsFormattersOnEveryInput(t *testing.T) {
	bin := report2results(t)
	cfg := config.Config{Builder: config.BuilderConfig{ID: "https://tekton.dev/chains/v2"}}
	payloaders := map[string]func(config.Config) (formats.Payloader, error){
		"in-toto (slsa/v1)": slsav1.NewFormatter,
		"slsa/v2alpha3":     v2alpha3.NewFormatter,
		"slsa/v2alpha4":     v2alpha4.NewFormatter,
	}
	for kind, args := range inputs(t, t.TempDir()) {
		t.Run(kind, func(t *testing.T) {
			want := pushedRepo + "@" + digest
			var cmdArgs []string
			for _, a := range args {
				if d, ok := strings.CutPrefix(a, "#digest="); ok {
					want = pushedRepo + "@" + d
					continue
				}
				cmdArgs = append(cmdArgs, a)
			}
			results := runFrom(t, bin, cmdArgs...)
			for fname, newFormatter := range payloaders {
				t.Run(fname, func(t *testing.T) {
					ctx := testContext(t)
					f, err := newFormatter(cfg)
					assert.NilError(t, err)
					assert.DeepEqual(t, statementSubjects(t, ctx, f, stepActionTaskRun(results, false)), []string{want})
				})
			}
			t.Run("slsa/v2alpha4, step results of the StepAction", func(t *testing.T) {
				ctx := testContext(t)
				f, err := v2alpha4.NewFormatter(cfg)
				assert.NilError(t, err)
				assert.DeepEqual(t, statementSubjects(t, ctx, f, stepActionTaskRun(results, true)), []string{want})
			})
			t.Run("OCI signer", func(t *testing.T) {
				ctx := testContext(t)
				assert.DeepEqual(t, dedupe(signed(ctx, taskRun(results))), []string{want})
			})
			assert.Check(t, is.Len(results, 4))
		})
	}
}

// stepActionTaskRun is a TaskRun of a user's Task whose second step is the
// report2results StepAction; its results are the Task's, or, with asStep,
// that step's own results.
func stepActionTaskRun(results []v1.TaskRunResult, asStep bool) *v1.TaskRun {
	tr := &v1.TaskRun{}
	tr.Name, tr.Namespace = "build-run", "default"
	tr.Spec.TaskSpec = &v1.TaskSpec{Steps: []v1.Step{
		{Name: "build", Image: "registry.example.com/builder", Script: "build"},
		{Name: "results", Ref: &v1.Ref{Name: "report2results"}},
	}}
	tr.Status.TaskSpec = tr.Spec.TaskSpec.DeepCopy()
	// The images the steps ran, as the kubelet reports them: Chains
	// records them as resolved dependencies.
	tr.Status.Steps = []v1.StepState{
		{Name: "build", Container: "step-build", ImageID: "registry.example.com/builder@sha256:" + otherHex},
		{Name: "results", Container: "step-results", ImageID: "registry.example.com/exportreport/report2results@sha256:" + otherHex},
	}
	if asStep {
		tr.Status.Steps[1].Results = results
	} else {
		tr.Status.Results = results
	}
	return tr
}
