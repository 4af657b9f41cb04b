package main_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/goleak"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/test/distribution"
)

var binary string

// TestMain builds report2results once and runs the tests against it.
// It also fails the tests if a goroutine is left over after them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runFunc(func() int {
		dir, err := os.MkdirTemp("", "report2results-test-")
		if err != nil {
			log.Print(err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "report2results")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			log.Printf("go build: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}))
}

// runFunc is a goleak.TestingM: the tests with their setup around them.
type runFunc func() int

func (f runFunc) Run() int { return f() }

const (
	digest    = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	imageID   = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	indexType = "application/vnd.oci.image.index.v1+json"
)

// registryReport is what export-step writes after a registry export.
var registryReport = `[image]
tags = ["registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2"]
digest = "` + digest + `"
manifest_size = 1234
media_type = "` + indexType + `"
`

var daemonReport = `[image]
tags = ["registry.example.com/team/app:latest"]
image_id = "` + imageID + `"
`

// lifecycleReport is what the Buildpacks lifecycle writes: no media type.
func lifecycleReport(digest string, size int64, tags ...string) string {
	return fmt.Sprintf("[image]\ntags = [%s]\ndigest = %q\nmanifest-size = %d\n\n[build]\n[[build.bom]]\nname = \"go\"\n",
		quoteAll(tags), digest, size)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func manyTagsReport() string {
	var tags []string
	for i := range 60 {
		tags = append(tags, fmt.Sprintf("registry.example.com/team/app:v%d", i))
	}
	return fmt.Sprintf("[image]\ntags = [%s]\ndigest = %q\n", quoteAll(tags), digest)
}

// manyTagsImages is the IMAGES result of manyTagsReport.
func manyTagsImages() string {
	var lines []string
	for i := range 60 {
		lines = append(lines, fmt.Sprintf("registry.example.com/team/app:v%d@%s", i, digest))
	}
	return strings.Join(lines, "\n")
}

type result struct {
	code           int
	stdout, stderr string
}

// env is the environment the command runs in: no host credentials, no
// CNB_REPORT_PATH unless a test sets it.
func env(extra ...string) []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNB_REPORT_PATH=") && !strings.HasPrefix(kv, "DOCKER_CONFIG=") {
			e = append(e, kv)
		}
	}
	return append(append(e, "DOCKER_CONFIG=/nonexistent"), extra...)
}

func run(t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", binary, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// workdir is a directory with an empty results/ and, unless report is
// empty, a report.toml.
func workdir(t *testing.T, report string) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "results"), 0o755))
	if report != "" {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "report.toml"), []byte(report), 0o644))
	}
	return dir
}

func readResults(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		assert.NilError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

func TestSuccess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report string
		args   []string
		want   map[string]string
	}{
		{
			name:   "defaults",
			report: registryReport,
			want: map[string]string{
				"IMAGE_DIGEST": digest,
				"IMAGE_URL":    "registry.example.com/team/app:latest",
			},
		},
		{
			name:   "every registry result, prefixed",
			report: registryReport,
			args:   []string{"-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES,IMAGE_REF", "-prefix", "APP"},
			want: map[string]string{
				"APP_IMAGE_DIGEST": digest,
				"APP_IMAGE_URL":    "registry.example.com/team/app:latest",
				"APP_IMAGES":       "registry.example.com/team/app:latest@" + digest + "\nregistry.example.com/team/app:1.4.2@" + digest,
				"APP_IMAGE_REF":    "registry.example.com/team/app:latest@" + digest,
			},
		},
		{
			// 60 tags: IMAGES alone is over 4096 bytes; with results-from:
			// sidecar-logs and a larger max-result-size it fits.
			name:   "IMAGES over 4096 bytes, -max-result-size 8192",
			report: manyTagsReport(),
			args:   []string{"-results", "IMAGES", "-max-result-size", "8192"},
			want:   map[string]string{"IMAGES": manyTagsImages()},
		},
		{
			name:   "daemon report",
			report: daemonReport,
			args:   []string{"-results", "IMAGE_ID,IMAGE_URL"},
			want: map[string]string{
				"IMAGE_ID":  imageID,
				"IMAGE_URL": "registry.example.com/team/app:latest",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workdir(t, tc.report)
			res := run(t, dir, env(), append([]string{"-results-dir", "results"}, tc.args...)...)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Equal(t, res.stdout, "")
			assert.DeepEqual(t, readResults(t, filepath.Join(dir, "results")), tc.want)
			assert.Equal(t, strings.Count(res.stderr, "msg=\"wrote result\""), len(tc.want), res.stderr)

			// -quiet: nothing on stderr either.
			res = run(t, dir, env(), append([]string{"-results-dir", "results", "-quiet"}, tc.args...)...)
			assert.Equal(t, res.code, 0, res.stderr)
			assert.Equal(t, res.stderr, "")
		})
	}
}

func TestFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(closed.URL, "http://")
	closed.Close() // nothing listens there any more

	for _, tc := range []struct {
		name     string
		report   string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", registryReport, []string{"-frobnicate"}, 2, "flag provided but not defined: -frobnicate"},
		{"argument", registryReport, []string{"extra"}, 2, `takes no arguments, got ["extra"]`},
		{"missing report", "", nil, 2, "report.toml"},
		{"report not TOML", "this is = = not toml", nil, 2, "report.toml"},
		{"report without tags", "[image]\ndigest = \"" + digest + "\"\n", nil, 2, "report.toml"},
		{"unknown result", registryReport, []string{"-results", "IMAGE_DIGEST,DIGEST"}, 2, `-results "IMAGE_DIGEST,DIGEST": unknown result "DIGEST"`},
		{"bad prefix", registryReport, []string{"-prefix", "my/prefix"}, 2, `-prefix "my/prefix"`},
		{"daemon report, default results", daemonReport, nil, 2, "-results IMAGE_DIGEST: report report.toml is from a daemon export: it has image_id but no registry digest; ask for IMAGE_ID"},
		{"registry report asked for IMAGE_ID", registryReport, []string{"-results", "IMAGE_ID"}, 2, "ask for IMAGE_DIGEST"},
		{"budget", manyTagsReport(), []string{"-results", "IMAGE_DIGEST,IMAGES"}, 2, "bytes of Tekton's 4096-byte termination message budget"},
		{"budget, -max-result-size 300", registryReport, []string{"-results", "IMAGE_DIGEST,IMAGES", "-max-result-size", "300"}, 2, "bytes of the 300-byte -max-result-size"},
		{"-max-result-size 0", registryReport, []string{"-max-result-size", "0"}, 2, "-max-result-size 0: want 1 to 1572863"},
		{"bad insecure registry", registryReport, []string{"-insecure-registry", "http://x/"}, 2, "-insecure-registry"},
		{"bad insecure registry in a list", registryReport, []string{"-insecure-registry", "ok.example.com,a b"}, 2, `want HOST[:PORT] without scheme or path, got "a b"`},
		{"negative wait", registryReport, []string{"-wait", "-1s"}, 2, "-wait -1s"},
		{"wait runs out", "", []string{"-wait", "50ms", "-quiet"}, 2, "-wait 50ms"},
		{"wait runs out, only an earlier report there", registryReport, []string{"-wait", "50ms", "-quiet"}, 2, "-wait 50ms: report.toml: no report written after this run started"},
		{"-newer missing", registryReport, []string{"-newer", "nothing"}, 2, "-newer nothing: "},
		{"offline and size missing", lifecycleReport(digest, 0, deadHost+"/team/app:latest"), []string{"-oci-layout", "layout", "-offline"}, 2, "-offline forbids asking the registry"},
		{"daemon report and -oci-layout", daemonReport, []string{"-results", "IMAGE_ID", "-oci-layout", "layout"}, 2, "-oci-layout layout: report report.toml is from a daemon export"},
		{"results dir missing", registryReport, []string{"-results-dir", "nowhere"}, 2, "-results-dir nowhere"},
		{"registry unreachable", lifecycleReport(digest, 0, deadHost+"/team/app:latest"), []string{"-oci-layout", "layout"}, 1, "HEAD " + deadHost + "/team/app@" + digest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workdir(t, tc.report)
			args := append([]string{"-results-dir", "results", "-termination-message", "termination-log"}, tc.args...)
			res := run(t, dir, env(), args...)
			assert.Equal(t, res.code, tc.wantCode, res.stderr)
			assert.Equal(t, res.stdout, "")
			assert.Assert(t, strings.HasPrefix(res.stderr, "report2results: "), res.stderr)
			assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "stderr is not one line: %q", res.stderr)
			assert.Assert(t, strings.Contains(res.stderr, tc.wantErr), "stderr %q does not contain %q", res.stderr, tc.wantErr)
			// Nothing written: the results dir is empty, no layout, no message.
			assert.DeepEqual(t, readResults(t, filepath.Join(dir, "results")), map[string]string{})
			for _, p := range []string{"layout", "termination-log"} {
				_, err := os.Stat(filepath.Join(dir, p))
				assert.Assert(t, errors.Is(err, os.ErrNotExist), "%s was written", p)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	res := run(t, t.TempDir(), env(), "-h")
	assert.Equal(t, res.code, 0)
	assert.Equal(t, res.stdout, "")
	for _, f := range []string{"-report", "-results-dir", "-results", "-prefix", "-oci-layout", "-oci-layout-blobs", "-wait", "-newer", "-max-result-size", "-termination-message", "-offline", "-insecure-registry", "-quiet"} {
		assert.Assert(t, regexp.MustCompile(`(?m)^  `+f+`( |$)`).MatchString(res.stderr), "usage lacks %s: %s", f, res.stderr)
	}
}

func TestReportPathFromEnvironment(t *testing.T) {
	dir := workdir(t, "")
	p := filepath.Join(t.TempDir(), "elsewhere.toml")
	assert.NilError(t, os.WriteFile(p, []byte(registryReport), 0o644))
	res := run(t, dir, env("CNB_REPORT_PATH="+p), "-results-dir", "results", "-quiet")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, readResults(t, filepath.Join(dir, "results"))["IMAGE_DIGEST"], digest)

	// -report wins over the environment.
	res = run(t, dir, env("CNB_REPORT_PATH="+p), "-results-dir", "results", "-report", "missing.toml")
	assert.Equal(t, res.code, 2)
	assert.Assert(t, strings.Contains(res.stderr, "missing.toml"), res.stderr)
}

func TestTerminationMessage(t *testing.T) {
	dir := workdir(t, registryReport)
	res := run(t, dir, env(), "-results-dir", "results", "-results", "", "-termination-message", "termination-log", "-quiet")
	assert.Equal(t, res.code, 0, res.stderr)
	b, err := os.ReadFile(filepath.Join(dir, "termination-log"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), `{"image":{"tags":["registry.example.com/team/app:latest","registry.example.com/team/app:1.4.2"],"digest":"`+digest+`","manifest_size":1234,"media_type":"`+indexType+`"}}`)
	assert.DeepEqual(t, readResults(t, filepath.Join(dir, "results")), map[string]string{})
}

// TestWait: the report appears while the command waits for it; a report
// already there when it started (an earlier run's) is not taken.
func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name, before string
	}{
		{"no report yet", ""},
		{"an earlier run's report there", strings.Replace(registryReport, digest, "sha256:"+strings.Repeat("0", 64), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workdir(t, tc.before)
			cmd := exec.Command(binary, "-results-dir", "results", "-wait", "2m")
			cmd.Dir = dir
			cmd.Env = env()
			stderr, err := cmd.StderrPipe()
			assert.NilError(t, err)
			assert.NilError(t, cmd.Start())
			lines := bufio.NewScanner(stderr)
			for lines.Scan() && !strings.Contains(lines.Text(), "waiting for the report") {
			}
			// Written as export-step does: a temp file renamed into place.
			tmp := filepath.Join(dir, ".report.toml.tmp")
			assert.NilError(t, os.WriteFile(tmp, []byte(registryReport), 0o644))
			assert.NilError(t, os.Rename(tmp, filepath.Join(dir, "report.toml")))
			rest, _ := io.ReadAll(stderr)
			assert.NilError(t, cmd.Wait(), string(rest))
			assert.Equal(t, readResults(t, filepath.Join(dir, "results"))["IMAGE_DIGEST"], digest)
		})
	}
}

// countingRegistry is go-containerregistry's in-process registry counting
// the requests it gets.
type countingRegistry struct {
	host  string
	mu    sync.Mutex
	all   int
	heads int
}

func (c *countingRegistry) counts() (all, heads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all, c.heads
}

func (c *countingRegistry) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all, c.heads = 0, 0
}

func startRegistry(t *testing.T) *countingRegistry {
	c := &countingRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.all++
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			c.heads++
		}
		c.mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	c.host = strings.TrimPrefix(s.URL, "http://")
	return c
}

// ociImage is a random image with OCI media types (skopeo 1.9 finds only
// OCI manifests in an OCI layout's index.json).
func ociImage(t *testing.T) (v1.Image, v1.Descriptor) {
	img, err := random.Image(512, 2)
	assert.NilError(t, err)
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	d, err := partial.Descriptor(img)
	assert.NilError(t, err)
	return img, *d
}

func TestOCILayoutRegistryRequests(t *testing.T) {
	reg := startRegistry(t)
	img, desc := ociImage(t)
	tags := []string{reg.host + "/team/app:latest", reg.host + "/team/app:1.4.2", reg.host + "/mirror/app:1.4.2"}
	for _, tag := range tags {
		ref, err := name.ParseReference(tag)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(ref, img))
	}
	ours := fmt.Sprintf("[image]\ntags = [%s]\ndigest = %q\nmanifest_size = %d\nmedia_type = %q\n", quoteAll(tags), desc.Digest, desc.Size, desc.MediaType)

	for _, tc := range []struct {
		name               string
		report             string
		args               []string
		wantCode           int
		wantAll, wantHeads int
	}{
		{"our report: no request", ours, nil, 0, 0, 0},
		{"lifecycle report: one HEAD for three tags", lifecycleReport(desc.Digest.String(), desc.Size, tags...), nil, 0, -1, 1},
		{"lifecycle report, -insecure-registry: one HEAD", lifecycleReport(desc.Digest.String(), desc.Size, tags...), []string{"-insecure-registry", reg.host}, 0, -1, 1},
		{"lifecycle report, -insecure-registry list and empty: one HEAD", lifecycleReport(desc.Digest.String(), desc.Size, tags...), []string{"-insecure-registry=", "-insecure-registry", "other.example.com:5000, " + reg.host}, 0, -1, 1},
		{"lifecycle report, -offline: no request, an error", lifecycleReport(desc.Digest.String(), desc.Size, tags...), []string{"-offline"}, 2, 0, 0},
		// The HEAD, then one GET each of the manifest and the config.
		{"lifecycle report, -oci-layout-blobs manifest", lifecycleReport(desc.Digest.String(), desc.Size, tags...), []string{"-oci-layout-blobs", "manifest"}, 0, -1, 1},
		{"our report, -oci-layout-blobs manifest -offline: an error", ours, []string{"-oci-layout-blobs", "manifest", "-offline"}, 2, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.reset()
			dir := workdir(t, tc.report)
			args := append([]string{"-results-dir", "results", "-oci-layout", "layout", "-quiet"}, tc.args...)
			res := run(t, dir, env(), args...)
			assert.Equal(t, res.code, tc.wantCode, res.stderr)
			all, heads := reg.counts()
			assert.Equal(t, heads, tc.wantHeads)
			if tc.wantAll >= 0 {
				assert.Equal(t, all, tc.wantAll)
			}
			if tc.wantCode != 0 {
				return
			}
			b, err := os.ReadFile(filepath.Join(dir, "layout", "index.json"))
			assert.NilError(t, err)
			var idx v1.IndexManifest
			assert.NilError(t, json.Unmarshal(b, &idx))
			assert.Equal(t, len(idx.Manifests), len(tags))
			for i, d := range idx.Manifests {
				assert.Equal(t, d.Digest, desc.Digest)
				assert.Equal(t, d.Size, desc.Size)
				assert.Equal(t, d.MediaType, desc.MediaType)
				assert.Equal(t, d.Annotations["io.containerd.image.name"], tags[i])
			}
			_, err = os.Stat(filepath.Join(dir, "layout", "blobs", "sha256", desc.Digest.Hex))
			assert.Equal(t, err == nil, strings.Contains(tc.name, "-oci-layout-blobs"), "manifest blob: %v", err)
		})
	}
}

// TestOCILayoutWithImage: export-step wrote the image into the layout; the
// index.json written here lets umoci and skopeo find it by tag.
func TestOCILayoutWithImage(t *testing.T) {
	umoci := distribution.RequireTool(t, "umoci")
	skopeo := distribution.RequireTool(t, "skopeo")
	img, desc := ociImage(t)
	dir := workdir(t, fmt.Sprintf("[image]\ntags = [\"registry.example.com/team/app:latest\", \"registry.example.com/team/app:1.4.2\"]\ndigest = %q\nmanifest_size = %d\nmedia_type = %q\n", desc.Digest, desc.Size, desc.MediaType))
	layoutDir := filepath.Join(dir, "layout")
	_, err := ggcrlayout.Write(layoutDir, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img}))
	assert.NilError(t, err)

	res := run(t, dir, env(), "-results-dir", "results", "-oci-layout", "layout", "-offline", "-quiet")
	assert.Equal(t, res.code, 0, res.stderr)

	out, err := exec.Command(umoci, "ls", "--layout", layoutDir).CombinedOutput()
	assert.NilError(t, err, string(out))
	names := strings.Fields(string(out))
	sort.Strings(names)
	assert.DeepEqual(t, names, []string{"1.4.2", "latest"})

	for _, tag := range names {
		out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+layoutDir+":"+tag).Output()
		assert.NilError(t, err, "skopeo inspect oci:%s:%s", layoutDir, tag)
		sum := sha256.Sum256(out)
		assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), desc.Digest.String())
		assert.Equal(t, int64(len(out)), desc.Size)
		var m struct {
			MediaType string `json:"mediaType"`
		}
		assert.NilError(t, json.Unmarshal(out, &m))
		assert.Equal(t, m.MediaType, string(desc.MediaType))
	}
}

// TestTerminationMessageBindMounted: Kubernetes bind-mounts the termination
// message file, so it cannot be replaced by rename (EBUSY); it is then
// written in place. Needs a private mount namespace (unshare -m, root).
func TestTerminationMessageBindMounted(t *testing.T) {
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("SKIPPED, NOT TESTED: no private mount namespace here (unshare -m: %v: %s)", err, out)
	}
	dir := workdir(t, registryReport)
	host := filepath.Join(dir, "host-termination-log") // the kubelet's file
	assert.NilError(t, os.WriteFile(host, nil, 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "termination-log"), nil, 0o644))
	script := `mount --bind host-termination-log termination-log && exec "$0" "$@"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, binary, "-results-dir", "results", "-termination-message", "termination-log", "-quiet")
	cmd.Dir = dir
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	b, err := os.ReadFile(host)
	assert.NilError(t, err)
	assert.Assert(t, strings.HasPrefix(string(b), `{"image":{"tags":["registry.example.com/team/app:latest",`), string(b))
}
