package report

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func registryReport() *Report {
	return &Report{Image: Image{Tags: []string{testTag, testTag2}, Digest: testDigest, ManifestSize: 1083, MediaType: testIndexType}}
}

// dirNames lists dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestWrite(t *testing.T) {
	for _, schema := range []Schema{SchemaRFC, SchemaPlatform} {
		t.Run(string(schema), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "report.toml")
			r := registryReport()
			assert.NilError(t, Write(path, r, schema))

			var want bytes.Buffer
			assert.NilError(t, Encode(&want, r, schema))
			got, err := os.ReadFile(path)
			assert.NilError(t, err)
			assert.Equal(t, string(got), want.String())
			assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"}) // no temp files left

			if runtime.GOOS != "windows" {
				info, err := os.Stat(path)
				assert.NilError(t, err)
				assert.Equal(t, info.Mode().Perm(), fs.FileMode(0o644))
			}
			back, err := Read(path)
			assert.NilError(t, err)
			assert.DeepEqual(t, back.Image.Tags, r.Image.Tags)
		})
	}
}

func TestWriteCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "report.toml")
	assert.NilError(t, Write(path, registryReport(), SchemaRFC))
	_, err := Read(path)
	assert.NilError(t, err)
}

// TestWriteReplacesWhole: a shorter report replaces a longer one entirely,
// by rename (a new inode), not by writing over it in place.
func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.toml")
	long, _ := manyTags(200)
	assert.NilError(t, os.WriteFile(path, long, 0o600))
	before, err := os.Stat(path)
	assert.NilError(t, err)

	short := &Report{Image: Image{Tags: []string{"app"}, ImageID: "9c0e1895b90f"}}
	assert.NilError(t, Write(path, short, SchemaRFC))

	got, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Equal(t, string(got), "[image]\n  tags = [\"app\"]\n  image_id = \"9c0e1895b90f\"\n")
	after, err := os.Stat(path)
	assert.NilError(t, err)
	assert.Check(t, !os.SameFile(before, after), "report was overwritten in place, not replaced")
	assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"})
}

func TestWriteRejectsBadInput(t *testing.T) {
	valid := registryReport()
	tests := []struct {
		name   string
		report *Report
		schema Schema
		want   string
	}{
		{"invalid report", &Report{Image: Image{Tags: []string{testTag}, Digest: "sha256:nope"}}, SchemaRFC, `[image] digest "sha256:nope"`},
		{"no tags", &Report{Image: Image{Digest: testDigest}}, SchemaPlatform, "[image] tags: empty"},
		{"unknown schema", valid, "yaml", `unknown schema "yaml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "report.toml")
			assert.NilError(t, os.WriteFile(path, []byte("old"), 0o644))
			err := Write(path, tc.report, tc.schema)
			assertInvalid(t, err, "write report "+path+": ")
			assert.Check(t, is.ErrorContains(err, tc.want))
			got, err := os.ReadFile(path)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(string(got), "old"))
			assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"})
		})
	}
}

func TestWriteOntoDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.toml")
	assert.NilError(t, os.Mkdir(path, 0o755))
	err := Write(path, registryReport(), SchemaRFC)
	assertInvalid(t, err, "write report "+path+": is a directory")
	assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"})
}

// TestWriteFailureLeavesNoTrace: a failure of the atomic write (its sync
// or rename, made to fail in pkg/atomicfile's tests) is an I/O error naming
// the report, not ErrInvalid, and the old report is untouched.
func TestWriteFailureLeavesNoTrace(t *testing.T) {
	boom := errors.New("injected failure")
	dir := t.TempDir()
	path := filepath.Join(dir, "report.toml")
	assert.NilError(t, os.WriteFile(path, []byte("old"), 0o644))

	err := write(path, registryReport(), SchemaRFC, func(string, []byte, fs.FileMode) error { return boom })
	assert.Check(t, errors.Is(err, boom), "got %v", err)
	assert.Check(t, !errors.Is(err, ErrInvalid))
	assert.Check(t, is.ErrorContains(err, "write report "+path+": "))
	assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"})
	got, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), "old"))
}

func TestRemove(t *testing.T) {
	t.Run("existing report", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "report.toml")
		assert.NilError(t, Write(path, registryReport(), SchemaRFC))
		assert.NilError(t, Remove(path))
		assert.Check(t, is.Len(dirNames(t, dir), 0))
		_, err := Read(path)
		assert.Check(t, errors.Is(err, fs.ErrNotExist))
	})
	t.Run("missing report", func(t *testing.T) {
		assert.NilError(t, Remove(filepath.Join(t.TempDir(), "report.toml")))
	})
	t.Run("missing directory", func(t *testing.T) {
		assert.NilError(t, Remove(filepath.Join(t.TempDir(), "nope", "report.toml")))
	})
	t.Run("directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "report.toml")
		assert.NilError(t, os.Mkdir(path, 0o755)) // empty: os.Remove would delete it
		err := Remove(path)
		assertInvalid(t, err, "remove report "+path+": is a directory")
		info, err := os.Stat(path)
		assert.NilError(t, err)
		assert.Check(t, info.IsDir())
	})
}
