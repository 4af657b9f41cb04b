package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/pushed"
	"github.com/exportreport/exportreport/pkg/report"
)

const (
	digest    = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	other     = "sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	imageID   = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	indexType = "application/vnd.oci.image.index.v1+json"
)

func registryReport() *report.Report {
	return &report.Report{Image: report.Image{
		Tags:         []string{"registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2", "mirror.example.com:5000/app:1.4.2"},
		Digest:       digest,
		ManifestSize: 1234,
		MediaType:    indexType,
	}}
}

func daemonReport() *report.Report {
	return &report.Report{Image: report.Image{
		Tags:    []string{"registry.example.com/team/app:latest"},
		ImageID: imageID,
	}}
}

func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		list    string
		want    []Kind
		wantErr string
	}{
		{list: "IMAGE_DIGEST,IMAGE_URL", want: []Kind{ImageDigest, ImageURL}},
		{list: " IMAGES , IMAGE_ID,", want: []Kind{Images, ImageID}},
		{list: "IMAGE_REF,IMAGE_REF,IMAGE_DIGEST", want: []Kind{ImageRef, ImageDigest}},
		{list: "IMAGE_DIGEST,IMAGE_URL,IMAGES,IMAGE_ID,IMAGE_REF,ARTIFACT_OUTPUTS", want: Kinds},
		{list: "", want: nil},
		{list: "IMAGE_DIGESTS", wantErr: `-results "IMAGE_DIGESTS": unknown result "IMAGE_DIGESTS"; known: IMAGE_DIGEST,IMAGE_URL,IMAGES,IMAGE_ID,IMAGE_REF,ARTIFACT_OUTPUTS`},
		{list: "image_digest", wantErr: `unknown result "image_digest"`},
	} {
		t.Run(tc.list, func(t *testing.T) {
			got, err := ParseKinds(tc.list)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, badinput.Err))
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestResultName(t *testing.T) {
	// Tekton's ResultNameFormat, pkg/apis/pipeline/v1/result_validation.go.
	assert.Equal(t, resultNameFormat.String(), `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	for _, tc := range []struct {
		prefix, want, wantErr string
	}{
		{prefix: "", want: "IMAGE_DIGEST"},
		{prefix: "BUILD", want: "BUILD_IMAGE_DIGEST"},
		{prefix: "first-image", want: "first-image_IMAGE_DIGEST"},
		{prefix: "app.v2", want: "app.v2_IMAGE_DIGEST"},
		{prefix: "X_", want: "X__IMAGE_DIGEST"},
		{prefix: "-x", wantErr: `-prefix "-x": result name "-x_IMAGE_DIGEST" is not a valid Tekton result name`},
		{prefix: "_x", wantErr: "not a valid Tekton result name"},
		{prefix: "a/b", wantErr: "not a valid Tekton result name"},
		{prefix: "a b", wantErr: "not a valid Tekton result name"},
		{prefix: "../x", wantErr: "not a valid Tekton result name"},
		{prefix: "ä", wantErr: "not a valid Tekton result name"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			got, err := ResultName(tc.prefix, ImageDigest)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, badinput.Err))
				assert.Assert(t, errors.Is(CheckPrefix(tc.prefix), badinput.Err))
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
			assert.NilError(t, CheckPrefix(tc.prefix))
		})
	}
}

func TestCompute(t *testing.T) {
	withTags := func(r *report.Report, tags ...string) *report.Report {
		r.Image.Tags = tags
		return r
	}
	for _, tc := range []struct {
		name    string
		r       *report.Report
		kinds   []Kind
		prefix  string
		want    []Result
		wantErr string
	}{
		{
			name:  "registry report, every registry result",
			r:     registryReport(),
			kinds: []Kind{ImageDigest, ImageURL, Images, ImageRef},
			want: []Result{
				{"IMAGE_DIGEST", digest},
				{"IMAGE_URL", "registry.example.com/team/app:latest"},
				{"IMAGES", "registry.example.com/team/app:latest@" + digest + "\nregistry.example.com/team/app:1.4.2@" + digest + "\nmirror.example.com:5000/app:1.4.2@" + digest},
				{"IMAGE_REF", "registry.example.com/team/app:latest@" + digest},
			},
		},
		{
			name:   "prefix",
			r:      registryReport(),
			kinds:  []Kind{ImageURL, ImageDigest},
			prefix: "APP",
			want:   []Result{{"APP_IMAGE_URL", "registry.example.com/team/app:latest"}, {"APP_IMAGE_DIGEST", digest}},
		},
		{
			name:  "tag as written, not normalised",
			r:     withTags(registryReport(), "ubuntu"),
			kinds: []Kind{ImageURL, ImageRef},
			want:  []Result{{"IMAGE_URL", "ubuntu"}, {"IMAGE_REF", "ubuntu@" + digest}},
		},
		{
			name:  "tags that carry the digest are not doubled",
			r:     withTags(registryReport(), "registry.example.com/team/app:latest@"+digest, "registry.example.com/team/app@"+digest, "registry.example.com/team/app:v2"),
			kinds: []Kind{ImageURL, ImageRef, Images},
			want: []Result{
				{"IMAGE_URL", "registry.example.com/team/app:latest"},
				{"IMAGE_REF", "registry.example.com/team/app:latest@" + digest},
				{"IMAGES", "registry.example.com/team/app:latest@" + digest + "\nregistry.example.com/team/app@" + digest + "\nregistry.example.com/team/app:v2@" + digest},
			},
		},
		{
			name:  "repeated tag listed once in IMAGES",
			r:     withTags(registryReport(), "r.example.com/a:1", "r.example.com/a:1"),
			kinds: []Kind{Images},
			want:  []Result{{"IMAGES", "r.example.com/a:1@" + digest}},
		},
		{
			name:  "daemon report: IMAGE_ID and IMAGE_URL",
			r:     daemonReport(),
			kinds: []Kind{ImageID, ImageURL},
			want:  []Result{{"IMAGE_ID", imageID}, {"IMAGE_URL", "registry.example.com/team/app:latest"}},
		},
		{
			name:  "daemon report: short image ID as given",
			r:     &report.Report{Image: report.Image{Tags: []string{"r.example.com/a:1"}, ImageID: "2cf24dba5fb0"}},
			kinds: []Kind{ImageID},
			want:  []Result{{"IMAGE_ID", "2cf24dba5fb0"}},
		},
		{
			name:    "daemon report asked for IMAGE_DIGEST",
			r:       daemonReport(),
			kinds:   DefaultKinds,
			wantErr: "-results IMAGE_DIGEST: report report.toml is from a daemon export: it has image_id but no registry digest; ask for IMAGE_ID",
		},
		{
			name:    "daemon report asked for IMAGE_REF",
			r:       daemonReport(),
			kinds:   []Kind{ImageRef},
			wantErr: "-results IMAGE_REF: report report.toml is from a daemon export",
		},
		{
			name:    "daemon report asked for IMAGES",
			r:       daemonReport(),
			kinds:   []Kind{Images},
			wantErr: "-results IMAGES: report report.toml is from a daemon export",
		},
		{
			name:    "registry report asked for IMAGE_ID",
			r:       registryReport(),
			kinds:   []Kind{ImageID},
			wantErr: "-results IMAGE_ID: report report.toml is from a registry export: it has a digest but no image_id; ask for IMAGE_DIGEST",
		},
		{
			name:    "bad prefix",
			r:       registryReport(),
			kinds:   DefaultKinds,
			prefix:  "a/b",
			wantErr: `-prefix "a/b"`,
		},
		{
			name:    "tag names another digest",
			r:       withTags(registryReport(), "r.example.com/a@"+other),
			kinds:   DefaultKinds,
			wantErr: "names digest " + other + ", the report's digest is " + digest,
		},
		{
			name:    "no tags",
			r:       withTags(registryReport()),
			kinds:   DefaultKinds,
			wantErr: "report report.toml: [image] tags is empty",
		},
		{
			name:    "tag not a reference",
			r:       withTags(registryReport(), "Not A Ref"),
			kinds:   DefaultKinds,
			wantErr: `tag "Not A Ref"`,
		},
		{
			name:    "digest not algorithm:hex",
			r:       &report.Report{Image: report.Image{Tags: []string{"r.example.com/a:1"}, Digest: "sha256:abc"}},
			kinds:   DefaultKinds,
			wantErr: `digest "sha256:abc"`,
		},
		{
			name:    "neither digest nor image ID",
			r:       &report.Report{Image: report.Image{Tags: []string{"r.example.com/a:1"}}},
			kinds:   DefaultKinds,
			wantErr: "neither digest nor image_id",
		},
		{
			name:    "nil report",
			kinds:   DefaultKinds,
			wantErr: "report report.toml: empty",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compute(tc.r, "report.toml", tc.kinds, tc.prefix)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Assert(t, errors.Is(err, badinput.Err))
				assert.Assert(t, !strings.Contains(err.Error(), "\n"))
				assert.Assert(t, is.Nil(got))
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			for _, r := range got {
				assert.Check(t, r.Value != "", "%s is empty", r.Name)
				assert.Check(t, !strings.HasSuffix(r.Value, "\n"), "%s ends with a newline", r.Name)
			}
		})
	}
}

func TestMessageSize(t *testing.T) {
	res := []Result{{"IMAGE_DIGEST", digest}, {"IMAGE_URL", "r.example.com/a:1"}}
	// What Tekton's entrypoint writes, with StartedAt at its longest.
	want := `[{"key":"IMAGE_DIGEST","value":"` + digest + `","type":1},` +
		`{"key":"IMAGE_URL","value":"r.example.com/a:1","type":1},` +
		`{"key":"StartedAt","value":"2006-01-02T15:04:05.000+00:00","type":3}]`
	assert.Equal(t, MessageSize(res, nil), len(want))
	// Other results and escaping count: a newline is two bytes in JSON.
	others := []Result{{"OTHER", "a\nb"}}
	assert.Equal(t, MessageSize(res, others), len(want)+len(`{"key":"OTHER","value":"a\nb","type":1},`))
}

func TestCheckBudget(t *testing.T) {
	base := MessageSize([]Result{{"IMAGES", ""}}, nil)
	fits := []Result{{"IMAGES", strings.Repeat("x", Budget-base)}}
	assert.Equal(t, MessageSize(fits, nil), Budget)
	assert.NilError(t, CheckBudget("/tekton/results", fits, nil, Budget))

	over := []Result{{"IMAGES", strings.Repeat("x", Budget-base+1)}}
	err := CheckBudget("/tekton/results", over, nil, Budget)
	assert.Assert(t, errors.Is(err, badinput.Err))
	assert.ErrorContains(t, err, fmt.Sprintf("-results-dir /tekton/results: the results would take %d bytes of Tekton's 4096-byte termination message budget", Budget+1))

	// Results of other steps count.
	err = CheckBudget("/tekton/results", fits, []Result{{"X", ""}}, Budget)
	assert.ErrorContains(t, err, "and 1 other result files already in the directory")
}

// manyTags is a registry report whose IMAGES does not fit the budget.
func manyTags() *report.Report {
	r := registryReport()
	r.Image.Tags = nil
	for i := range 40 {
		r.Image.Tags = append(r.Image.Tags, fmt.Sprintf("registry.example.com/team/app:v%d", i))
	}
	return r
}

func testOptions(t *testing.T, kinds ...Kind) Options {
	dir := t.TempDir()
	return Options{
		ReportPath: "report.toml",
		ResultsDir: filepath.Join(dir, "results"),
		Kinds:      kinds,
	}
}

func mkdir(t *testing.T, dir string) {
	assert.NilError(t, os.MkdirAll(dir, 0o755))
}

func TestWriteGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		r      *report.Report
		kinds  []Kind
		prefix string
	}{
		{"registry", registryReport(), []Kind{ImageDigest, ImageURL, Images, ImageRef}, ""},
		{"prefixed", registryReport(), DefaultKinds, "APP"},
		{"daemon", daemonReport(), []Kind{ImageID, ImageURL}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, tc.kinds...)
			o.Prefix = tc.prefix
			o.TerminationMessage = filepath.Join(filepath.Dir(o.ResultsDir), "termination-log")
			mkdir(t, o.ResultsDir)
			assert.NilError(t, runReport(context.Background(), o, tc.r, slog.New(slog.DiscardHandler)))

			entries, err := os.ReadDir(o.ResultsDir)
			assert.NilError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
				b, err := os.ReadFile(filepath.Join(o.ResultsDir, e.Name()))
				assert.NilError(t, err)
				assert.Check(t, len(b) > 0 && b[len(b)-1] != '\n', "%s: empty or ends with a newline", e.Name())
				golden.Assert(t, string(b), filepath.Join(tc.name, e.Name()+".golden"))
				fi, err := e.Info()
				assert.NilError(t, err)
				assert.Equal(t, fi.Mode().Perm(), fs.FileMode(0o644), e.Name())
			}
			var want []string
			for _, k := range tc.kinds {
				n, err := ResultName(tc.prefix, k)
				assert.NilError(t, err)
				want = append(want, n)
			}
			sort.Strings(want)
			assert.DeepEqual(t, names, want) // no temp files left behind

			msg, err := os.ReadFile(o.TerminationMessage)
			assert.NilError(t, err)
			golden.Assert(t, string(msg), filepath.Join(tc.name, "termination-message.golden"))
			assert.Assert(t, json.Valid(msg))
		})
	}
}

func TestWriteOCILayout(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	mkdir(t, o.ResultsDir)
	o.OCILayout = filepath.Join(filepath.Dir(o.ResultsDir), "layout")
	o.Offline = true
	assert.NilError(t, runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler)))
	b, err := os.ReadFile(filepath.Join(o.OCILayout, "index.json"))
	assert.NilError(t, err)
	golden.Assert(t, string(b), "registry/index.json.golden")
	_, err = os.Stat(filepath.Join(o.OCILayout, "oci-layout"))
	assert.NilError(t, err)
}

// TestNothingWrittenOnBadInput: every check happens before any write.
func TestNothingWrittenOnBadInput(t *testing.T) {
	lifecycle := registryReport()
	lifecycle.Image.MediaType = "" // needs the registry, and -offline forbids it
	bigMessage := registryReport()
	for i := range 120 {
		bigMessage.Image.Tags = append(bigMessage.Image.Tags, fmt.Sprintf("registry.example.com/team/app:v%d", i))
	}
	for _, tc := range []struct {
		name    string
		r       *report.Report
		kinds   []Kind
		prefix  string
		offline bool
		wantErr string
	}{
		{"daemon report asked for IMAGE_DIGEST", daemonReport(), DefaultKinds, "", false, "is from a daemon export"},
		{"daemon report and -oci-layout", daemonReport(), []Kind{ImageID}, "", false, "-oci-layout"},
		{"budget", manyTags(), []Kind{ImageDigest, Images}, "", false, "termination message budget"},
		{"termination message budget", bigMessage, []Kind{ImageDigest}, "", true, "-termination-message"},
		{"bad prefix", registryReport(), DefaultKinds, "-", false, `-prefix "-"`},
		{"offline and size missing", lifecycle, DefaultKinds, "", true, "-offline forbids asking the registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, tc.kinds...)
			mkdir(t, o.ResultsDir)
			o.Prefix = tc.prefix
			o.Offline = tc.offline
			o.OCILayout = filepath.Join(filepath.Dir(o.ResultsDir), "layout")
			o.TerminationMessage = filepath.Join(filepath.Dir(o.ResultsDir), "termination-log")
			err := runReport(context.Background(), o, tc.r, slog.New(slog.DiscardHandler))
			assert.ErrorContains(t, err, tc.wantErr)
			assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
			entries, err := os.ReadDir(filepath.Dir(o.ResultsDir))
			assert.NilError(t, err)
			assert.Equal(t, len(entries), 1) // only the empty results dir
			entries, err = os.ReadDir(o.ResultsDir)
			assert.NilError(t, err)
			assert.Equal(t, len(entries), 0)
		})
	}
}

func TestResultsDirMissing(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	err := runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "-results-dir "+o.ResultsDir)
	assert.Assert(t, errors.Is(err, badinput.Err))
}

// TestOtherResultsCountAgainstTheBudget: a result an earlier step wrote goes
// into the same termination message.
func TestOtherResultsCountAgainstTheBudget(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	mkdir(t, o.ResultsDir)
	assert.NilError(t, os.WriteFile(filepath.Join(o.ResultsDir, "SBOM_BLOB_URL"), []byte(strings.Repeat("x", 3900)), 0o644))
	// Ours, and temp files, do not count.
	assert.NilError(t, os.WriteFile(filepath.Join(o.ResultsDir, "IMAGE_DIGEST"), []byte(strings.Repeat("x", 3900)), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(o.ResultsDir, ".IMAGE_URL.tmp-1"), []byte(strings.Repeat("x", 3900)), 0o644))
	err := runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "and 1 other result files already in the directory")

	assert.NilError(t, os.Remove(filepath.Join(o.ResultsDir, "SBOM_BLOB_URL")))
	assert.NilError(t, runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler)))
	b, err := os.ReadFile(filepath.Join(o.ResultsDir, "IMAGE_DIGEST"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), digest) // replaced
}

func TestRunUnknownKind(t *testing.T) {
	o := testOptions(t, Kind("IMAGE_DIGESTS"))
	err := Run(context.Background(), o)
	assert.ErrorContains(t, err, `unknown result "IMAGE_DIGESTS"`)
	assert.Assert(t, errors.Is(err, badinput.Err))
}

const reportTOML = `[image]
tags = ["registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2"]
digest = "` + digest + `"
manifest_size = 1234
media_type = "` + indexType + `"
`

// writeReport puts a report at path the way export-step does: a temp file
// renamed into place.
func writeReport(t testing.TB, path, content string) {
	tmp := path + ".tmp"
	assert.NilError(t, os.WriteFile(tmp, []byte(content), 0o644))
	assert.NilError(t, os.Rename(tmp, path))
}

func TestRun(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	mkdir(t, o.ResultsDir)
	o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
	writeReport(t, o.ReportPath, reportTOML)
	assert.NilError(t, Run(context.Background(), o))
	b, err := os.ReadFile(filepath.Join(o.ResultsDir, "IMAGE_URL"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "registry.example.com/team/app:latest")
}

func TestRunMissingReport(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	mkdir(t, o.ResultsDir)
	o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
	err := Run(context.Background(), o)
	assert.Assert(t, errors.Is(err, report.ErrInvalid), "%v", err)
	assert.Assert(t, errors.Is(err, fs.ErrNotExist), "%v", err)
	assert.ErrorContains(t, err, o.ReportPath)

	o.Wait = 20 * time.Millisecond
	err = Run(context.Background(), o)
	assert.ErrorContains(t, err, "-wait 20ms")
	assert.Assert(t, errors.Is(err, report.ErrInvalid), "%v", err)
}

// signalHandler is a slog handler that closes waiting when Run logs that it
// is waiting for the report.
type signalHandler struct {
	slog.Handler
	waiting chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "waiting for the report" {
		close(h.waiting)
	}
	return nil
}

func TestRunWaitsForTheReport(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	mkdir(t, o.ResultsDir)
	o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
	o.Wait = 5 * time.Minute // bounded; the test ends as soon as the report appears
	waiting := make(chan struct{})
	o.Logger = slog.New(signalHandler{Handler: slog.DiscardHandler, waiting: waiting})
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), o) }()
	<-waiting // Run has looked, found nothing, and is polling
	writeReport(t, o.ReportPath, reportTOML)
	assert.NilError(t, <-done)
	b, err := os.ReadFile(filepath.Join(o.ResultsDir, "IMAGE_DIGEST"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), digest)
}

func TestRunWaitCancelled(t *testing.T) {
	o := testOptions(t, DefaultKinds...)
	o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
	o.Wait = 5 * time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan struct{})
	o.Logger = slog.New(signalHandler{Handler: slog.DiscardHandler, waiting: waiting})
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	<-waiting
	cancel()
	err := <-done
	assert.Assert(t, errors.Is(err, context.Canceled), "%v", err)
	assert.ErrorContains(t, err, "-wait 5m0s: waiting for "+o.ReportPath)
}

func BenchmarkRun(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "report.toml")
	writeReport(b, path, reportTOML)
	o := Options{
		ReportPath: path,
		ResultsDir: filepath.Join(dir, "results"),
		Kinds:      []Kind{ImageDigest, ImageURL, Images, ImageRef},
		OCILayout:  filepath.Join(dir, "layout"),
		Offline:    true,
	}
	assert.NilError(b, os.Mkdir(o.ResultsDir, 0o755))
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			o.Fsync = fsync
			b.ReportAllocs()
			for b.Loop() {
				if err := Run(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestOCILayoutMerged: -oci-layout into a layout that already lists other
// images (the build's own layout) keeps every descriptor that names none
// of the report's tags, replaces those that do (by
// io.containerd.image.name or a full reference in ref.name, normalised; or
// a bare ref.name equal to a tag's tag when no full name says otherwise),
// and adds the report's. The layout's blobs are not touched.
func TestOCILayoutMerged(t *testing.T) {
	const (
		a = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		b = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	desc := func(d, annotations string) string {
		s := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,"digest":"` + d + `"`
		if annotations != "" {
			s += `,"annotations":{` + annotations + `}`
		}
		return s + `}`
	}
	existing := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		desc(a, "") + `,` + // no name at all: kept
		desc(a, `"org.opencontainers.image.ref.name":"build"`) + `,` + // another tag: kept
		desc(b, `"io.containerd.image.name":"registry.example.com/other/app:latest","org.opencontainers.image.ref.name":"latest"`) + `,` + // same tag, other repository: kept
		desc(b, `"io.containerd.image.name":"registry.example.com/team/app:latest","org.opencontainers.image.ref.name":"latest"`) + `,` + // ours: replaced
		desc(b, `"org.opencontainers.image.ref.name":"registry.example.com/team/app:1.4.2"`) + `,` + // ours, full ref.name: replaced
		desc(b, `"org.opencontainers.image.ref.name":"latest"`) + `,` + // a bare tag of ours (oci:DIR:latest): replaced
		desc(a, `"io.containerd.image.name":"mirror.example.com:5000/app:1.4.2","vnd.example.note":"x"`) + // ours: replaced
		`],"annotations":{"vnd.example.layout":"kept"}}`

	o := testOptions(t)
	o.Kinds = nil
	o.OCILayout = filepath.Join(t.TempDir(), "layout")
	o.Offline = true
	mkdir(t, filepath.Join(o.OCILayout, "blobs", "sha256"))
	blob := filepath.Join(o.OCILayout, "blobs", "sha256", strings.TrimPrefix(a, "sha256:"))
	assert.NilError(t, os.WriteFile(blob, []byte("manifest"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(o.OCILayout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(o.OCILayout, "index.json"), []byte(existing), 0o644))

	assert.NilError(t, runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler)))

	raw, err := os.ReadFile(filepath.Join(o.OCILayout, "index.json"))
	assert.NilError(t, err)
	var got struct {
		Annotations map[string]string `json:"annotations"`
		Manifests   []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	assert.NilError(t, json.Unmarshal(raw, &got))
	var names []string
	for _, m := range got.Manifests {
		names = append(names, m.Digest[7:8]+" "+m.Annotations["io.containerd.image.name"]+" "+m.Annotations["org.opencontainers.image.ref.name"])
	}
	assert.DeepEqual(t, names, []string{
		"a  ",
		"a  build",
		"b registry.example.com/other/app:latest latest",
		"9 registry.example.com/team/app:latest latest",
		"9 registry.example.com/team/app:1.4.2 1.4.2",
		"9 mirror.example.com:5000/app:1.4.2 1.4.2",
	})
	assert.DeepEqual(t, got.Annotations, map[string]string{"vnd.example.layout": "kept"})
	golden.Assert(t, string(raw), "merged/index.json.golden")
	b2, err := os.ReadFile(blob)
	assert.NilError(t, err)
	assert.Equal(t, string(b2), "manifest")

	// An index.json that is not one is never overwritten: exit 2, nothing written.
	assert.NilError(t, os.WriteFile(filepath.Join(o.OCILayout, "index.json"), []byte(`{"manifests":[`), 0o644))
	err = runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler))
	assert.Check(t, errors.Is(err, badinput.Err), "%v", err)
	assert.ErrorContains(t, err, "-oci-layout "+o.OCILayout+": index.json: ")
	raw, err = os.ReadFile(filepath.Join(o.OCILayout, "index.json"))
	assert.NilError(t, err)
	assert.Equal(t, string(raw), `{"manifests":[`)
}

// TestOCILayoutBlobsChecked: -oci-layout-blobs is checked before anything
// is read or written; offline, fetching is bad input.
func TestOCILayoutBlobsChecked(t *testing.T) {
	for _, tc := range []struct {
		name, blobs, layout string
		offline             bool
		want                string
	}{
		{"unknown value", "all", "layout", false, `-oci-layout-blobs "all": want none or manifest`},
		{"without -oci-layout", BlobsManifest, "", false, "-oci-layout-blobs manifest: needs -oci-layout"},
		{"offline", BlobsManifest, "layout", true, "-oci-layout-blobs manifest: fetching manifests and configs needs the registry and -offline forbids asking it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, DefaultKinds...)
			mkdir(t, o.ResultsDir)
			o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
			writeReport(t, o.ReportPath, reportTOML)
			o.OCILayoutBlobs, o.Offline = tc.blobs, tc.offline
			if tc.layout != "" {
				o.OCILayout = filepath.Join(t.TempDir(), tc.layout)
			}
			err := Run(context.Background(), o)
			assert.Check(t, errors.Is(err, badinput.Err), "%v", err)
			assert.ErrorContains(t, err, tc.want)
			entries, err := os.ReadDir(o.ResultsDir)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "nothing written")
			if o.OCILayout != "" {
				_, err := os.Stat(o.OCILayout)
				assert.Check(t, errors.Is(err, fs.ErrNotExist), "layout written: %v", err)
			}
		})
	}
}

// staleTOML is a report a previous run left on a persistent workspace.
var staleTOML = strings.Replace(reportTOML, digest, other, 1)

// TestRunWaitIgnoresAStaleReport: with -wait, a report that was already
// there when the run started (a previous run's, on a persistent workspace)
// is not taken: the run waits for one written after it started, and fails
// when none comes. Before, it returned the stale report's values at once.
func TestRunWaitIgnoresAStaleReport(t *testing.T) {
	t.Run("a new report replaces it: its values", func(t *testing.T) {
		o := testOptions(t, DefaultKinds...)
		mkdir(t, o.ResultsDir)
		o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
		writeReport(t, o.ReportPath, staleTOML)
		o.Wait = 5 * time.Minute // bounded; the test ends as soon as the report appears
		waiting := make(chan struct{})
		o.Logger = slog.New(signalHandler{Handler: slog.DiscardHandler, waiting: waiting})
		done := make(chan error, 1)
		go func() { done <- Run(context.Background(), o) }()
		select {
		case <-waiting: // Run has seen the stale report and is polling
		case err := <-done:
			t.Fatalf("Run returned without waiting: %v", err)
		}
		writeReport(t, o.ReportPath, reportTOML)
		assert.NilError(t, <-done)
		b, err := os.ReadFile(filepath.Join(o.ResultsDir, "IMAGE_DIGEST"))
		assert.NilError(t, err)
		assert.Equal(t, string(b), digest)
	})
	t.Run("no new report: an error, nothing written", func(t *testing.T) {
		o := testOptions(t, DefaultKinds...)
		mkdir(t, o.ResultsDir)
		o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
		writeReport(t, o.ReportPath, staleTOML)
		o.Wait = 50 * time.Millisecond
		err := Run(context.Background(), o)
		assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
		assert.ErrorContains(t, err, "-wait 50ms: "+o.ReportPath+": no report written after this run started")
		entries, err := os.ReadDir(o.ResultsDir)
		assert.NilError(t, err)
		assert.Check(t, is.Len(entries, 0))
	})
}

// TestRunNewer: -newer FILE names the point the report must be newer than
// (its modification time), with or without -wait.
func TestRunNewer(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		report  time.Time // the report's mtime
		wait    time.Duration
		wantErr string
	}{
		{name: "newer: taken", report: base.Add(time.Second)},
		{name: "newer, with -wait: taken at once", report: base.Add(time.Second), wait: time.Minute},
		{name: "as old: refused", report: base, wantErr: "is not newer than -newer"},
		{name: "older: refused", report: base.Add(-time.Hour), wantErr: "is not newer than -newer"},
		{name: "older, with -wait: waited for, then refused", report: base.Add(-time.Hour), wait: 50 * time.Millisecond, wantErr: "-wait 50ms: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, DefaultKinds...)
			mkdir(t, o.ResultsDir)
			dir := t.TempDir()
			o.ReportPath = filepath.Join(dir, "report.toml")
			writeReport(t, o.ReportPath, reportTOML)
			assert.NilError(t, os.Chtimes(o.ReportPath, tc.report, tc.report))
			o.Newer = filepath.Join(dir, "started")
			assert.NilError(t, os.WriteFile(o.Newer, nil, 0o644))
			assert.NilError(t, os.Chtimes(o.Newer, base, base))
			o.Wait = tc.wait
			err := Run(context.Background(), o)
			if tc.wantErr == "" {
				assert.NilError(t, err)
				return
			}
			assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
			assert.ErrorContains(t, err, tc.wantErr)
			assert.ErrorContains(t, err, o.Newer)
		})
	}
	t.Run("-newer missing: bad input", func(t *testing.T) {
		o := testOptions(t, DefaultKinds...)
		o.Newer = filepath.Join(t.TempDir(), "nothing")
		err := Run(context.Background(), o)
		assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
		assert.ErrorContains(t, err, "-newer "+o.Newer)
	})
}

// tagsReport is a registry report with n tags.
func tagsReport(n int) *report.Report {
	r := registryReport()
	r.Image.Tags = nil
	for i := range n {
		r.Image.Tags = append(r.Image.Tags, fmt.Sprintf("registry.example.com/team/app:v%d", i))
	}
	return r
}

// TestMaxResultSize: -max-result-size is Tekton's max-result-size. Up to
// 4096 the results share the termination message, which must fit in it;
// above, only results-from: sidecar-logs carries them, each result's log
// line checked alone. Before, the budget was 4096 whatever the cluster.
func TestMaxResultSize(t *testing.T) {
	images := func(r *report.Report) int { // IMAGES' sidecar log line
		res, err := Compute(r, "report.toml", []Kind{Images}, "")
		assert.NilError(t, err)
		return SidecarLineSize(res[0])
	}
	big := tagsReport(100) // IMAGES alone: about 11 KB
	for _, tc := range []struct {
		name    string
		r       *report.Report
		max     int
		wantErr string
	}{
		{name: "default: the termination message", r: big, wantErr: "of Tekton's 4096-byte termination message budget"},
		{name: "4096: the same", r: big, max: 4096, wantErr: "of Tekton's 4096-byte termination message budget"},
		{name: "smaller: stricter", r: tagsReport(10), max: 600, wantErr: "of the 600-byte -max-result-size"},
		{name: "sidecar-logs, large enough", r: big, max: images(big)},
		{name: "sidecar-logs, one byte short", r: big, max: images(big) - 1, wantErr: fmt.Sprintf("result IMAGES would take %d bytes, over the %d-byte -max-result-size", images(big), images(big)-1)},
		{name: "the largest Tekton takes", r: big, max: MaxMaxResultSize},
		{name: "over it", r: big, max: MaxMaxResultSize + 1, wantErr: "-max-result-size 1572864: want 1 to 1572863"},
		{name: "negative", r: big, max: -1, wantErr: "-max-result-size -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, ImageDigest, ImageURL, Images)
			mkdir(t, o.ResultsDir)
			o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
			assert.NilError(t, report.Write(o.ReportPath, tc.r, report.SchemaRFC))
			o.MaxResultSize = tc.max
			err := Run(context.Background(), o)
			entries, rerr := os.ReadDir(o.ResultsDir)
			assert.NilError(t, rerr)
			if tc.wantErr == "" {
				assert.NilError(t, err)
				assert.Check(t, is.Len(entries, 3))
				return
			}
			assert.Assert(t, errors.Is(err, badinput.Err), "%v", err)
			assert.ErrorContains(t, err, tc.wantErr)
			assert.Check(t, is.Len(entries, 0), "nothing written")
		})
	}
}

// runReport runs o on the report r as read, as Run does after reading it.
func runReport(ctx context.Context, o Options, r *report.Report, log *slog.Logger) error {
	return runImages(ctx, o, []pushed.Image{imageOf(r)}, 0, log)
}
