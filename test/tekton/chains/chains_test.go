// Package chains feeds the results report2results writes to Tekton Chains'
// own extraction code and checks what Chains would record.
package chains

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/tektoncd/chains/pkg/artifacts"
	"github.com/tektoncd/chains/pkg/chains/formats/slsa/extract"
	"github.com/tektoncd/chains/pkg/chains/objects"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"go.uber.org/zap/zaptest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"knative.dev/pkg/logging"

	"github.com/exportreport/exportreport/test/distribution"
)

const (
	digestHex = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
	digest    = "sha256:" + digestHex
	otherHex  = "9a3f1c0b7d4e2f6a8b5c3d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a"
)

// Reports as export-step writes them (rfc schema) and as the Buildpacks
// lifecycle writes them (platform schema, with a [build] BOM table).
const (
	ourReport = `[image]
tags = ["registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2", "mirror.example.org/app:1.4.2"]
digest = "` + digest + `"
manifest_size = 1234
media_type = "application/vnd.oci.image.index.v1+json"
`
	lifecycleReport = `[image]
  tags = ["registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2"]
  digest = "` + digest + `"
  manifest-size = 1234

[build]
  [[build.bom]]
    name = "openjdk"
    [build.bom.metadata]
      version = "21.0.2"
    [build.bom.buildpack]
      id = "paketo-buildpacks/bellsoft-liberica"
      version = "10.4.0"
`
)

// report2results builds cmd/report2results from the root module once.
func report2results(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	assert.NilError(t, err)
	// The command is part of the repository: missing, the checkout is
	// broken, a failure whatever CI says. The go tool may be missing from
	// PATH: skipped loudly without CI, a failure with it.
	_, err = os.Stat(filepath.Join(root, "cmd", "report2results", "main.go"))
	assert.NilError(t, err, "cmd/report2results is missing from %s: nothing to feed Chains", root)
	goTool := distribution.RequireTool(t, "go")
	bin := filepath.Join(t.TempDir(), "report2results")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/report2results")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "go build ./cmd/report2results: %s", out)
	return bin
}

// runResults runs report2results on a report and returns the results it
// wrote, as a TaskRun's status carries them.
func runResults(t *testing.T, bin, reportText string, args ...string) []v1.TaskRunResult {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "report.toml")
	assert.NilError(t, os.WriteFile(reportPath, []byte(reportText), 0o644))
	return resultsOf(t, bin, append([]string{"-report=" + reportPath}, args...)...)
}

func taskRun(results []v1.TaskRunResult) *v1.TaskRun {
	tr := &v1.TaskRun{}
	tr.Name = "export-image-run"
	tr.Namespace = "default"
	tr.Status.Results = results
	return tr
}

// subjects returns the provenance subjects Chains records for a TaskRun, as
// "repository@sha256:hex", sorted.
func subjects(ctx context.Context, tr *v1.TaskRun) []string {
	var got []string
	for _, s := range extract.SubjectDigests(ctx, objects.NewTaskRunObjectV1(tr), nil) {
		for alg, hex := range s.Digest {
			got = append(got, s.Name+"@"+alg+":"+hex)
		}
	}
	sort.Strings(got)
	return got
}

// signed returns the images Chains' OCI artifact signer would sign.
func signed(ctx context.Context, tr *v1.TaskRun) []string {
	var got []string
	for _, o := range (&artifacts.OCIArtifact{}).ExtractObjects(ctx, objects.NewTaskRunObjectV1(tr)) {
		if d, ok := o.(name.Digest); ok {
			got = append(got, d.Context().Name()+"@"+d.DigestStr())
		}
	}
	sort.Strings(got)
	return got
}

// TestChainsRecordsThePushedImage: what report2results writes makes Chains
// record the pushed repository with the pushed digest, from our report and
// from a lifecycle report, with and without -prefix.
func TestChainsRecordsThePushedImage(t *testing.T) {
	bin := report2results(t)
	const app = "registry.example.com/team/app@" + digest
	const mirror = "mirror.example.org/app@" + digest
	tests := []struct {
		name         string
		report       string
		args         []string
		wantResults  []string // result names written
		wantSubjects []string
	}{
		{
			name:         "our report, default results",
			report:       ourReport,
			wantResults:  []string{"IMAGE_DIGEST", "IMAGE_URL"},
			wantSubjects: []string{app},
		},
		{
			name:        "our report, IMAGES too: every repository pushed",
			report:      ourReport,
			args:        []string{"-results=IMAGE_DIGEST,IMAGE_URL,IMAGES"},
			wantResults: []string{"IMAGES", "IMAGE_DIGEST", "IMAGE_URL"},
			// Chains dedupes by repository and digest: the two tags of
			// team/app make one subject.
			wantSubjects: []string{mirror, app},
		},
		{
			name:         "our report, prefix APP",
			report:       ourReport,
			args:         []string{"-prefix=APP", "-results=IMAGE_DIGEST,IMAGE_URL,IMAGES"},
			wantResults:  []string{"APP_IMAGES", "APP_IMAGE_DIGEST", "APP_IMAGE_URL"},
			wantSubjects: []string{app}, // Chains reads only an unprefixed IMAGES
		},
		{
			name:         "lifecycle report, default results",
			report:       lifecycleReport,
			wantResults:  []string{"IMAGE_DIGEST", "IMAGE_URL"},
			wantSubjects: []string{app},
		},
		{
			name:         "lifecycle report, prefix APP (the Catalog buildpacks names)",
			report:       lifecycleReport,
			args:         []string{"-prefix=APP"},
			wantResults:  []string{"APP_IMAGE_DIGEST", "APP_IMAGE_URL"},
			wantSubjects: []string{app},
		},
		{
			name:         "lifecycle report, IMAGE_REF as well",
			report:       lifecycleReport,
			args:         []string{"-results=IMAGE_DIGEST,IMAGE_URL,IMAGE_REF"},
			wantResults:  []string{"IMAGE_DIGEST", "IMAGE_REF", "IMAGE_URL"},
			wantSubjects: []string{app},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			results := runResults(t, bin, tc.report, tc.args...)
			var names []string
			for _, r := range results {
				names = append(names, r.Name)
				assert.Assert(t, !strings.HasSuffix(r.Value.StringVal, "\n"), "result %s ends with a newline: %q", r.Name, r.Value.StringVal)
			}
			sort.Strings(names)
			assert.DeepEqual(t, names, tc.wantResults)

			tr := taskRun(results)
			assert.DeepEqual(t, subjects(ctx, tr), tc.wantSubjects)
			// The OCI signer signs the same images (it does not dedupe
			// tags, so compare as a set).
			assert.DeepEqual(t, dedupe(signed(ctx, tr)), tc.wantSubjects)
		})
	}
}

// testContext carries a logger that writes Chains' logs to the test log
// (shown with -v or on failure) instead of stderr.
func testContext(t *testing.T) context.Context {
	return logging.WithLogger(context.Background(), zaptest.NewLogger(t).Sugar())
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// TestChainsIgnoresWhatItShould guards the reading of the test above: Chains
// records nothing for results that do not follow its type hints, so the
// subjects above come from report2results' names and formats, not from a
// lenient Chains.
func TestChainsIgnoresWhatItShould(t *testing.T) {
	str := func(n, v string) v1.TaskRunResult {
		return v1.TaskRunResult{Name: n, Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues(v)}
	}
	tests := []struct {
		name    string
		results []v1.TaskRunResult
		want    []string
	}{
		{name: "URL without DIGEST", results: []v1.TaskRunResult{str("IMAGE_URL", "registry.example.com/team/app:latest")}},
		{name: "DIGEST without algorithm", results: []v1.TaskRunResult{str("IMAGE_URL", "registry.example.com/team/app:latest"), str("IMAGE_DIGEST", digestHex)}},
		{name: "prefixed IMAGES alone", results: []v1.TaskRunResult{str("APP_IMAGES", "registry.example.com/team/app:latest@"+digest)}},
		{name: "unrelated names", results: []v1.TaskRunResult{str("DIGEST", digest), str("URL", "registry.example.com/team/app")}},
		{
			name:    "two prefixed pairs are two subjects",
			results: []v1.TaskRunResult{str("A_IMAGE_URL", "r.example/team/a:1"), str("A_IMAGE_DIGEST", digest), str("B_IMAGE_URL", "r.example/team/b:1"), str("B_IMAGE_DIGEST", "sha256:"+otherHex)},
			want:    []string{"r.example/team/a@" + digest, "r.example/team/b@sha256:" + otherHex},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := subjects(testContext(t), taskRun(tc.results))
			assert.Check(t, is.DeepEqual(got, tc.want))
		})
	}
}

// TestChainsRecordsThePipelineRunResults: the Pipelines pass the export
// task's IMAGE_URL and IMAGE_DIGEST on as their own results, which Chains
// reads for the PipelineRun's subject with the same type-hint extraction.
func TestChainsRecordsThePipelineRunResults(t *testing.T) {
	bin := report2results(t)
	results := runResults(t, bin, ourReport)
	pr := &v1.PipelineRun{}
	pr.Name = "build-export-consume-run"
	for _, r := range results {
		pr.Status.Results = append(pr.Status.Results, v1.PipelineRunResult{Name: r.Name, Value: r.Value})
	}
	var got []string
	for _, o := range artifacts.ExtractOCIImagesFromResults(testContext(t), objects.NewPipelineRunObjectV1(pr).GetResults()) {
		if d, ok := o.(name.Digest); ok {
			got = append(got, d.Context().Name()+"@"+d.DigestStr())
		}
	}
	assert.DeepEqual(t, got, []string{"registry.example.com/team/app@" + digest})
}
