package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/exportreport/exportreport/test/distribution"
)

// assertBadInput checks the contract for bad usage or input: exit 2, stdout
// empty, one stderr line that contains want.
func assertBadInput(t *testing.T, res *icmd.Result, want string) {
	t.Helper()
	assertExit(t, res, 2)
	assert.Check(t, is.Equal(res.Stdout(), ""))
	stderr := strings.TrimRight(res.Stderr(), "\n")
	assert.Check(t, stderr != "", "no error message")
	assert.Check(t, !strings.Contains(stderr, "\n"), "more than one stderr line:\n%s", stderr)
	assert.Check(t, is.Contains(stderr, want))
}

// Bad input to export-step: exit 2, one stderr line naming the file or flag
// at fault, no report, nothing pushed.
func TestExportStepBadInput(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	inputs := t.TempDir()
	good := writeLayout(t, newImage(t, "bad-input", amd64))
	missing := filepath.Join(inputs, "does-not-exist")
	notImageDir := filepath.Join(inputs, "not-an-image")
	assert.NilError(t, os.Mkdir(notImageDir, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(notImageDir, "README.txt"), []byte("hello\n"), 0o644))
	notImageFile := filepath.Join(inputs, "notes.txt")
	assert.NilError(t, os.WriteFile(notImageFile, []byte("not a tarball\n"), 0o644))
	tag := reg.Host() + "/bad/input:latest"
	// Hostile paths (docs/reliability.md, "Bad and hostile input").
	outside := filepath.Join(inputs, "outside")
	assert.NilError(t, os.Mkdir(outside, 0o755))
	symlinkedBlobs := writeLayout(t, newImage(t, "symlinked-blobs", amd64))
	assert.NilError(t, os.Rename(filepath.Join(symlinkedBlobs, "blobs"), filepath.Join(outside, "blobs")))
	assert.NilError(t, os.Symlink(filepath.Join(outside, "blobs"), filepath.Join(symlinkedBlobs, "blobs")))
	destWithLink := filepath.Join(inputs, "dest-layout")
	assert.NilError(t, os.Mkdir(destWithLink, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(destWithLink, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(destWithLink, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644))
	assert.NilError(t, os.Symlink(outside, filepath.Join(destWithLink, "blobs")))
	escapingArchive := filepath.Join(inputs, "escaping.tar")
	assert.NilError(t, os.WriteFile(escapingArchive, tarFile(t, "manifest.json", `[{"Config":"../../etc/passwd","Layers":[]}]`), 0o644))

	tests := []struct {
		name string
		args []string
		want string // in the error line
	}{
		{name: "missing oci source", args: []string{"-source", "oci:" + missing, tag}, want: missing},
		{name: "missing source path", args: []string{"-source", missing, tag}, want: missing},
		{name: "directory that is not an image", args: []string{"-source", "oci:" + notImageDir, tag}, want: notImageDir},
		{name: "file that is not an image", args: []string{"-source", notImageFile, tag}, want: notImageFile},
		{name: "docker-archive that is not a tarball", args: []string{"-source", "docker-archive:" + notImageFile, tag}, want: notImageFile},
		{name: "unknown transport", args: []string{"-source", "ftp:" + good, tag}, want: "ftp"},
		{name: "unknown flag", args: []string{"-no-such-flag", "-source", "oci:" + good, tag}, want: "no-such-flag"},
		{name: "jobs 0", args: []string{"-jobs", "0", "-source", "oci:" + good, tag}, want: "jobs"},
		{name: "invalid tag", args: []string{"-source", "oci:" + good, reg.Host() + "/Bad/UPPER:latest"}, want: reg.Host() + "/Bad/UPPER:latest"},
		{name: "invalid second tag", args: []string{"-source", "oci:" + good, tag, reg.Host() + "/bad/input:not a tag"}, want: "not a tag"},
		{name: "unknown report schema", args: []string{"-report-schema", "yaml", "-source", "oci:" + good, tag}, want: "report-schema"},
		{name: "no destination", args: []string{"-source", "oci:" + good}},
		{name: "source layout with blobs/ a symlink outside", args: []string{"-source", "oci:" + symlinkedBlobs, tag}, want: filepath.Join(symlinkedBlobs, "blobs") + " is not a directory (symlink)"},
		{name: "-oci-layout with blobs/ a symlink outside", args: []string{"-source", "oci:" + good, "-oci-layout", destWithLink, tag}, want: "-oci-layout " + filepath.Join(destWithLink, "blobs") + " is not a directory (symlink)"},
		{name: "docker-archive naming ../../etc/passwd", args: []string{"-source", "docker-archive:" + escapingArchive, tag}, want: `names "../../etc/passwd", outside the archive`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			args := append([]string{"-report", filepath.Join(work, "report.toml"), "-insecure-registry", reg.Host()}, tc.args...)
			res := run(t, "export-step", work, nil, args...)
			assertBadInput(t, res, tc.want)
			assertEmptyDir(t, work)
		})
	}
	assert.Check(t, is.Len(reg.Catalog(t), 0), "something was pushed")
	entries, err := os.ReadDir(outside)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 1), "written outside: %v", entries) // the moved blobs/ only
}

// Bad input to report2results: exit 2, one stderr line naming the file or
// flag at fault, no results and no layout written.
func TestReport2ResultsBadInput(t *testing.T) {
	t.Parallel()
	inputs := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(inputs, name)
		assert.NilError(t, os.WriteFile(path, []byte(content), 0o644))
		return path
	}
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	registryReport := write("registry.toml", "[image]\ntags = [\"registry.example.com/team/app:latest\"]\ndigest = \""+digest+"\"\n"+
		"manifest_size = 1234\nmedia_type = \"application/vnd.oci.image.manifest.v1+json\"\n")
	daemonReport := write("daemon.toml", "[image]\ntags = [\"registry.example.com/team/app:latest\"]\nimage_id = \""+digest+"\"\n")
	notTOML := write("not.toml", "[image\ntags = \n")
	missing := filepath.Join(inputs, "missing.toml")
	huge := filepath.Join(inputs, "huge.toml") // 100 MiB, sparse
	assert.NilError(t, os.WriteFile(huge, nil, 0o644))
	assert.NilError(t, os.Truncate(huge, 100<<20))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "missing report", args: []string{"-report", missing}, want: missing},
		{name: "not TOML", args: []string{"-report", notTOML}, want: notTOML},
		{name: "100 MiB report", args: []string{"-report", huge}, want: huge + ": larger than the 4 MiB (4194304 bytes) limit"},
		{name: "digest of a daemon report", args: []string{"-report", daemonReport, "-results", "IMAGE_DIGEST"}, want: "IMAGE_DIGEST"},
		{name: "unknown result", args: []string{"-report", registryReport, "-results", "IMAGE_DIGEST,NO_SUCH_RESULT"}, want: "NO_SUCH_RESULT"},
		{name: "unknown flag", args: []string{"-report", registryReport, "-no-such-flag"}, want: "no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			results := filepath.Join(work, "results")
			assert.NilError(t, os.Mkdir(results, 0o755))
			args := append([]string{"-results-dir", results, "-oci-layout", filepath.Join(work, "layout"), "-offline"}, tc.args...)
			res := run(t, "report2results", work, nil, args...)
			assertBadInput(t, res, tc.want)
			assertEmptyDir(t, results)
			assertNoFile(t, filepath.Join(work, "layout"))
		})
	}
}
