package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/goleak"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/export"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/test/distribution"
)

// binary is export-step, built once by TestMain.
var binary string

// TestMain also fails the tests if a goroutine is left over after them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runFunc(func() int {
		dir, err := os.MkdirTemp("", "export-step-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "export-step")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}))
}

// runFunc is a goleak.TestingM: the tests with their setup around them.
type runFunc func() int

func (f runFunc) Run() int { return f() }

type result struct {
	code           int
	stdout, stderr string
}

// run runs export-step in dir with a clean environment (no credentials, no
// CNB_REPORT_PATH, no SOURCE_DATE_EPOCH) plus env.
func runBinary(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	drop := map[string]bool{"HOME": true, "DOCKER_CONFIG": true, report.EnvPath: true, "SOURCE_DATE_EPOCH": true}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		assert.NilError(t, err)
	}
	t.Logf("export-step %s\n  exit %d\n  stdout: %q\n  stderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// testRegistry is the in-process registry, counting the requests it gets.
type testRegistry struct {
	host string
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// sourceLayout writes img as an OCI image layout tagged "latest".
func sourceLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "latest"})))
	return dir
}

func newImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	assert.NilError(t, err)
	return img
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.Digest()
	assert.NilError(t, err)
	return h.String()
}

func TestStdoutIsOnlyTheDigest(t *testing.T) {
	reg := newTestRegistry(t)
	img := newImage(t)
	src := sourceLayout(t, img)
	work := t.TempDir()
	tags := []string{reg.host + "/team/app:latest", reg.host + "/team/app:1.4.2"}

	res := runBinary(t, work, nil, append([]string{"-source", "oci:" + src, "-report", filepath.Join(work, "r.toml")}, tags...)...)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, res.stdout, digest(t, img)+"\n")
	assert.Assert(t, is.Contains(res.stderr, "level=INFO"), "logs go to stderr")

	r, err := report.Read(filepath.Join(work, "r.toml"))
	assert.NilError(t, err)
	raw, err := img.RawManifest()
	assert.NilError(t, err)
	mt, err := img.MediaType()
	assert.NilError(t, err)
	assert.DeepEqual(t, r.Image, report.Image{Tags: tags, Digest: digest(t, img), ManifestSize: int64(len(raw)), MediaType: string(mt)})
}

func TestQuietPrintsNothingOnStderr(t *testing.T) {
	reg := newTestRegistry(t)
	img := newImage(t)
	work := t.TempDir()
	res := runBinary(t, work, nil, "-quiet", "-source", "oci:"+sourceLayout(t, img), reg.host+"/app:1")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, res.stderr, "")
	assert.Equal(t, res.stdout, digest(t, img)+"\n")
	_, err := os.Stat(filepath.Join(work, report.DefaultPath))
	assert.NilError(t, err, "the default report is ./report.toml")
}

func TestReportPathFromEnvironment(t *testing.T) {
	reg := newTestRegistry(t)
	img := newImage(t)
	work := t.TempDir()
	envPath := filepath.Join(t.TempDir(), "env.toml")
	res := runBinary(t, work, []string{report.EnvPath + "=" + envPath}, "-quiet", "-report-schema", "platform",
		"-source", "oci:"+sourceLayout(t, img), reg.host+"/app:1")
	assert.Equal(t, res.code, 0, res.stderr)
	data, err := os.ReadFile(envPath)
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(string(data), "manifest-size"))
	assertEmptyDir(t, work)
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(entries), 0, "files in %s: %v", dir, entries)
}

func TestBadUsageExitsTwoAndTouchesNothing(t *testing.T) {
	reg := newTestRegistry(t)
	src := sourceLayout(t, newImage(t))
	tag := reg.host + "/app:1"
	ok := []string{"-source", "oci:" + src}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{name: "no IMAGE", args: ok, want: "no destination IMAGE given; usage: export-step [flags] IMAGE [IMAGE...]"},
		{name: "unknown flag", args: append([]string{"-nope"}, append(ok, tag)...), want: "-nope"},
		{name: "jobs 0", args: append([]string{"-jobs", "0"}, append(ok, tag)...), want: "-jobs"},
		{name: "jobs negative", args: append([]string{"-jobs", "-3"}, append(ok, tag)...), want: "-jobs"},
		{name: "jobs not a number", args: append([]string{"-jobs", "many"}, append(ok, tag)...), want: "-jobs"},
		{name: "compression unknown", args: append([]string{"-compression", "lz4"}, append(ok, tag)...), want: "-compression: want gzip or zstd"},
		{name: "compression zstd to the daemon", args: append([]string{"-compression", "zstd", "-daemon"}, append(ok, tag)...), want: "-compression zstd: not with -daemon"},
		{name: "compression empty", args: append([]string{"-compression", ""}, append(ok, tag)...), want: "-compression"},
		{name: "timeout 0", args: append([]string{"-timeout", "0s"}, append(ok, tag)...), want: "-timeout must be positive"},
		{name: "timeout not a duration", args: append([]string{"-timeout", "10"}, append(ok, tag)...), want: "-timeout"},
		{name: "SOURCE_DATE_EPOCH", env: []string{"SOURCE_DATE_EPOCH=yesterday"}, args: append(ok, tag), want: "SOURCE_DATE_EPOCH"},
		{name: "negative SOURCE_DATE_EPOCH", env: []string{"SOURCE_DATE_EPOCH=-1"}, args: append(ok, tag), want: "SOURCE_DATE_EPOCH"},
		{name: "label without =", args: append([]string{"-label", "novalue"}, append(ok, tag)...), want: "-label"},
		{name: "env without key", args: append([]string{"-env", "=x"}, append(ok, tag)...), want: "-env"},
		{name: "entrypoint bad JSON", args: append([]string{"-entrypoint", `["a",`}, append(ok, tag)...), want: "-entrypoint"},
		{name: "cmd not strings", args: append([]string{"-cmd", `[1,2]`}, append(ok, tag)...), want: "-cmd"},
		{name: "report schema", args: append([]string{"-report-schema", "yaml"}, append(ok, tag)...), want: "-report-schema"},
		{name: "platform", args: append([]string{"-platform", "linux"}, append(ok, tag)...), want: "-platform"},
		{name: "insecure registry", args: append([]string{"-insecure-registry", "http://" + reg.host}, append(ok, tag)...), want: "-insecure-registry"},
		{name: "digest destination", args: append(ok, reg.host+"/app@sha256:"+strings.Repeat("a", 64)), want: "not a digest"},
		{name: "bad destination", args: append(ok, reg.host+"/App:1"), want: reg.host + "/App:1"},
		{name: "missing source", args: []string{"-source", "oci:" + filepath.Join(src, "nope"), tag}, want: "nope"},
		{name: "no source", args: []string{tag}, want: "-source"},
		{name: "append missing dir", args: append([]string{"-append", filepath.Join(src, "nope")}, append(ok, tag)...), want: "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			before := len(reg.requests())
			res := runBinary(t, work, tc.env, tc.args...)
			assert.Equal(t, res.code, 2, res.stderr)
			assert.Equal(t, res.stdout, "")
			assert.Assert(t, strings.HasPrefix(res.stderr, "export-step: "), res.stderr)
			assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "one line: %q", res.stderr)
			assert.Assert(t, is.Contains(res.stderr, tc.want))
			assert.Equal(t, len(reg.requests()), before, "requests to the registry: %v", reg.requests()[before:])
			assertEmptyDir(t, work)
		})
	}
}

func TestHelp(t *testing.T) {
	res := runBinary(t, t.TempDir(), nil, "-h")
	assert.Equal(t, res.code, 0)
	assert.Equal(t, res.stdout, "")
	for _, flag := range []string{"-source", "-daemon", "-oci-layout", "-append", "-label", "-env", "-entrypoint", "-cmd",
		"-workdir", "-user", "-platform", "-cache-dir", "-report", "-report-schema", "-insecure-registry", "-jobs", "-compression", "-timeout", "-quiet", "-failure-message"} {
		assert.Check(t, is.Regexp(`\n  `+flag+`[ \n]`, res.stderr), flag)
	}
}

func TestFailedExportExitsOneAndRemovesTheStaleReport(t *testing.T) {
	reg := newTestRegistry(t)
	reg.srv.Close()
	work := t.TempDir()
	reportPath := filepath.Join(work, "report.toml")
	assert.NilError(t, os.WriteFile(reportPath, []byte("[image]\ntags = [\"old/app:1\"]\ndigest = \"sha256:"+strings.Repeat("a", 64)+"\"\n"), 0o644))

	res := runBinary(t, work, nil, "-source", "oci:"+sourceLayout(t, newImage(t)), "-report", reportPath, reg.host+"/app:1")
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Equal(t, res.stdout, "")
	lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
	assert.Assert(t, strings.HasPrefix(lines[len(lines)-1], "export-step: push "+reg.host+"/app:1: "), res.stderr)
	_, err := os.Stat(reportPath)
	assert.Assert(t, errors.Is(err, fs.ErrNotExist), "stale report still there")
}

// -failure-message: on a failure (exit 1 or 2) the one-line error is the
// value of one entry of Tekton's termination message JSON, the same line
// as on stderr; on success the file is left alone; a symlink at the path
// is not written through.
func TestFailureMessage(t *testing.T) {
	reg := newTestRegistry(t)
	down := newTestRegistry(t)
	down.srv.Close()
	img := newImage(t)
	src := sourceLayout(t, img)

	type entry struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Type  int    `json:"type"`
	}
	for _, tc := range []struct {
		name     string
		args     func(msg string) []string
		wantCode int
		wantErr  string // a substring of the recorded line; "" = nothing written
	}{
		{name: "unreachable registry", wantCode: 1, wantErr: "export-step: push " + down.host + "/app:1: ",
			args: func(msg string) []string {
				return []string{"-failure-message", msg, "-source", "oci:" + src, down.host + "/app:1"}
			}},
		{name: "bad flag after it", wantCode: 2, wantErr: "export-step: -jobs must be at least 1, got 0",
			args: func(msg string) []string { return []string{"-failure-message", msg, "-jobs", "0", reg.host + "/app:1"} }},
		{name: "bad source", wantCode: 2, wantErr: "export-step: -source",
			args: func(msg string) []string {
				return []string{"-failure-message", msg, "-source", "oci:/nonexistent", reg.host + "/app:1"}
			}},
		{name: "success writes nothing", wantCode: 0,
			args: func(msg string) []string {
				return []string{"-failure-message", msg, "-source", "oci:" + src, reg.host + "/app:1"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			msg := filepath.Join(work, "termination")
			res := runBinary(t, work, nil, append([]string{"-report", filepath.Join(work, "report.toml")}, tc.args(msg)...)...)
			assert.Equal(t, res.code, tc.wantCode, res.stderr)
			data, err := os.ReadFile(msg)
			if tc.wantErr == "" {
				assert.Assert(t, errors.Is(err, fs.ErrNotExist), "a successful run wrote %q", data)
				return
			}
			assert.NilError(t, err)
			var entries []entry
			assert.NilError(t, json.Unmarshal(data, &entries), string(data))
			assert.Equal(t, len(entries), 1, string(data))
			assert.Equal(t, entries[0].Key, "error")
			assert.Equal(t, entries[0].Type, 10)
			assert.Assert(t, is.Contains(entries[0].Value, tc.wantErr))
			assert.Assert(t, !strings.Contains(entries[0].Value, "\n"))
			lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
			assert.Equal(t, entries[0].Value, lines[len(lines)-1], "the line on stderr")
		})
	}

	t.Run("a symlink is replaced, not written through", func(t *testing.T) {
		work := t.TempDir()
		outside := filepath.Join(t.TempDir(), "outside")
		assert.NilError(t, os.WriteFile(outside, []byte("keep"), 0o644))
		msg := filepath.Join(work, "termination")
		assert.NilError(t, os.Symlink(outside, msg))
		res := runBinary(t, work, nil, "-failure-message", msg, "-jobs", "0", reg.host+"/app:1")
		assert.Equal(t, res.code, 2, res.stderr)
		data, err := os.ReadFile(outside)
		assert.NilError(t, err)
		assert.Equal(t, string(data), "keep")
		fi, err := os.Lstat(msg)
		assert.NilError(t, err)
		assert.Assert(t, fi.Mode().IsRegular())
	})
}

// The config flags and SOURCE_DATE_EPOCH reach the pushed image.
func TestEditFlags(t *testing.T) {
	reg := newTestRegistry(t)
	files := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(files, "hello.txt"), []byte("hi\n"), 0o644))
	base := newImage(t)
	args := []string{"-quiet", "-source", "oci:" + sourceLayout(t, base),
		"-append", files + ":/opt/files",
		"-label", "org.example.a=1", "-label", "b=two=2",
		"-env", "A=1", "-env", "PATH=/bin",
		"-entrypoint", `["/bin/app", "--flag"]`,
		"-cmd", "serve now",
		"-workdir", "/srv",
		"-user", "1000:1000",
		reg.host + "/edited:1"}
	res := runBinary(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH=1700000000"}, args...)
	assert.Equal(t, res.code, 0, res.stderr)

	ref, err := name.ParseReference(reg.host + "/edited:1")
	assert.NilError(t, err)
	img, err := remote.Image(ref)
	assert.NilError(t, err)
	assert.Equal(t, digest(t, img)+"\n", res.stdout)
	cfg, err := img.ConfigFile()
	assert.NilError(t, err)
	assert.DeepEqual(t, cfg.Config.Labels, map[string]string{"org.example.a": "1", "b": "two=2"})
	assert.Check(t, is.Contains(cfg.Config.Env, "A=1"))
	assert.Check(t, is.Contains(cfg.Config.Env, "PATH=/bin"))
	assert.DeepEqual(t, cfg.Config.Entrypoint, []string{"/bin/app", "--flag"})
	assert.DeepEqual(t, cfg.Config.Cmd, []string{"serve now"})
	assert.Equal(t, cfg.Config.WorkingDir, "/srv")
	assert.Equal(t, cfg.Config.User, "1000:1000")
	assert.Equal(t, cfg.Created.Time.UTC(), time.Unix(1700000000, 0).UTC())
	layers, err := img.Layers()
	assert.NilError(t, err)
	baseLayers, err := base.Layers()
	assert.NilError(t, err)
	assert.Equal(t, len(layers), len(baseLayers)+1)

	// Same inputs, same digest.
	again := runBinary(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH=1700000000"}, append(args[:len(args)-1], reg.host+"/edited:2")...)
	assert.Equal(t, again.code, 0, again.stderr)
	assert.Equal(t, again.stdout, res.stdout)
}

func TestOCILayoutFlag(t *testing.T) {
	reg := newTestRegistry(t)
	img := newImage(t)
	out := filepath.Join(t.TempDir(), "out")
	res := runBinary(t, t.TempDir(), nil, "-quiet", "-oci-layout", out, "-source", "oci:"+sourceLayout(t, img), reg.host+"/app:v1")
	assert.Equal(t, res.code, 0, res.stderr)
	idx, err := layout.ImageIndexFromPath(out)
	assert.NilError(t, err)
	im, err := idx.IndexManifest()
	assert.NilError(t, err)
	assert.Equal(t, len(im.Manifests), 1)
	assert.Equal(t, im.Manifests[0].Digest.String(), digest(t, img))
	assert.Equal(t, im.Manifests[0].Annotations[ourlayout.AnnotationRefName], "v1")
	assert.Equal(t, im.Manifests[0].Annotations[ourlayout.AnnotationImageName], reg.host+"/app:v1")
}

func TestDaemonPrintsTheImageID(t *testing.T) {
	distribution.RequireDockerEngine(t)
	var b [6]byte
	_, err := rand.Read(b[:])
	assert.NilError(t, err)
	tag := "exportreport.test/cmd/daemon:t" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "--force", tag).Run() })

	work := t.TempDir()
	res := runBinary(t, work, nil, "-quiet", "-daemon", "-source", "oci:"+sourceLayout(t, newImage(t)), tag)
	assert.Equal(t, res.code, 0, res.stderr)
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", tag).Output()
	assert.NilError(t, err)
	assert.Equal(t, res.stdout, string(out))
	r, err := report.Read(filepath.Join(work, report.DefaultPath))
	assert.NilError(t, err)
	assert.Equal(t, r.Image.ImageID+"\n", res.stdout)
	assert.Equal(t, r.Image.Digest, "")
}

func TestParseFlags(t *testing.T) {
	strp := func(s string) *string { return &s }
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o export.Options)
	}{
		{name: "defaults", args: []string{"r/app"}, check: func(t *testing.T, o export.Options) {
			assert.Equal(t, o.Jobs, 4)
			assert.Equal(t, o.ReportPath, report.DefaultPath)
			assert.Equal(t, o.ReportSchema, report.SchemaRFC)
			assert.Assert(t, o.Edits.Empty())
			assert.Assert(t, o.Edits.Entrypoint == nil && o.Edits.Cmd == nil && o.Edits.Workdir == nil && o.Edits.User == nil)
			assert.Equal(t, o.Edits.Created, time.Unix(0, 0).UTC())
			assert.DeepEqual(t, o.Tags, []string{"r/app"})
		}},
		{name: "env report path", args: []string{"r/app"}, env: map[string]string{report.EnvPath: "/layers/report.toml"}, check: func(t *testing.T, o export.Options) {
			assert.Equal(t, o.ReportPath, "/layers/report.toml")
		}},
		{name: "flag beats env", args: []string{"-report", "x.toml", "r/app"}, env: map[string]string{report.EnvPath: "/layers/report.toml"}, check: func(t *testing.T, o export.Options) {
			assert.Equal(t, o.ReportPath, "x.toml")
		}},
		{name: "entrypoint JSON, cmd single", args: []string{"-entrypoint", ` ["/a", "b c"]`, "-cmd", "/bin/sh -c true", "r/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Edits.Entrypoint, []string{"/a", "b c"})
			assert.DeepEqual(t, o.Edits.Cmd, []string{"/bin/sh -c true"})
		}},
		{name: "empty clears", args: []string{"-entrypoint", "", "-cmd", "[]", "r/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Edits.Entrypoint, []string{})
			assert.DeepEqual(t, o.Edits.Cmd, []string{})
		}},
		{name: "workdir and user set to empty", args: []string{"-workdir", "", "-user", "", "r/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Edits.Workdir, strp(""))
			assert.DeepEqual(t, o.Edits.User, strp(""))
		}},
		{name: "append", args: []string{"-append", "dir", "-append", "a:b:/opt/x", "-append", "./c:/", "r/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Edits.Append, []export.AppendSpec{{Dir: "dir"}, {Dir: "a:b", Dest: "/opt/x"}, {Dir: "./c", Dest: "/"}})
		}},
		{name: "repeatable", args: []string{"-insecure-registry", "a:5000", "-insecure-registry", "b", "-label", "k=v=w", "-env", "E=", "r/app", "s/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Insecure, []string{"a:5000", "b"})
			assert.DeepEqual(t, o.Edits.Labels, map[string]string{"k": "v=w"})
			assert.DeepEqual(t, o.Edits.Env, []string{"E="})
			assert.DeepEqual(t, o.Tags, []string{"r/app", "s/app"})
		}},
		{name: "insecure registry: empty value (a Tekton param default) and comma list", args: []string{"-insecure-registry=", "-insecure-registry", "a:5000,b", "r/app"}, check: func(t *testing.T, o export.Options) {
			assert.DeepEqual(t, o.Insecure, []string{"a:5000", "b"})
		}},
		{name: "SOURCE_DATE_EPOCH", args: []string{"r/app"}, env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, check: func(t *testing.T, o export.Options) {
			assert.Equal(t, o.Edits.Created, time.Unix(1700000000, 0).UTC())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failureMessage string
			o, err := parseFlags(tc.args, io.Discard, func(k string) string { return tc.env[k] }, &failureMessage)
			assert.NilError(t, err)
			tc.check(t, o)
		})
	}
}
