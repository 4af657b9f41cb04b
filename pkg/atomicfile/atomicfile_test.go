package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

// writers are the durable and the atomic-only writers: both replace a file
// whole or not at all; only the first fsyncs.
var writers = []struct {
	name      string
	write     func(string, fs.FileMode, func(io.Writer) error) error
	writeFile func(string, []byte, fs.FileMode) error
}{
	{"durable", Write, WriteFile},
	{"replace", Replace, ReplaceFile},
}

func TestWriteFileReplacesWhole(t *testing.T) {
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "index.json")
			assert.NilError(t, os.WriteFile(p, []byte("old content, longer than the new"), 0o600))

			assert.NilError(t, w.writeFile(p, []byte("new"), 0o644))

			got, err := os.ReadFile(p)
			assert.NilError(t, err)
			assert.Equal(t, string(got), "new")
			fi, err := os.Stat(p)
			assert.NilError(t, err)
			assert.Equal(t, fi.Mode().Perm(), os.FileMode(0o644))
			assertOnly(t, dir, "index.json")
		})
	}
}

func TestWriteFailureLeavesOldFileAndNoTemp(t *testing.T) {
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "report.toml")
			assert.NilError(t, os.WriteFile(p, []byte("old"), 0o644))
			boom := errors.New("boom")

			err := w.write(p, 0o644, func(w io.Writer) error {
				if _, err := w.Write([]byte("half")); err != nil {
					return err
				}
				return boom
			})

			assert.ErrorIs(t, err, boom)
			got, rerr := os.ReadFile(p)
			assert.NilError(t, rerr)
			assert.Equal(t, string(got), "old")
			assertOnly(t, dir, "report.toml")
		})
	}
}

// TestSyncOrRenameFailureLeavesOldFileAndNoTemp: a failure after the temp
// file is written (its fsync, the rename) removes the temp file and leaves
// the old file as it was.
func TestSyncOrRenameFailureLeavesOldFileAndNoTemp(t *testing.T) {
	boom := errors.New("injected failure")
	for _, tc := range []struct {
		name string
		fsys files
	}{
		{"sync fails", files{sync: func(*os.File) error { return boom }, rename: os.Rename}},
		{"rename fails", files{sync: (*os.File).Sync, rename: func(string, string) error { return boom }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "report.toml")
			assert.NilError(t, os.WriteFile(p, []byte("old"), 0o644))

			err := tc.fsys.write(p, 0o644, nil, []byte("new"), true)

			assert.ErrorIs(t, err, boom)
			got, rerr := os.ReadFile(p)
			assert.NilError(t, rerr)
			assert.Equal(t, string(got), "old")
			assertOnly(t, dir, "report.toml")
		})
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o644)
	assert.Assert(t, errors.Is(err, os.ErrNotExist), "got %v", err)
}

// assertOnly checks that dir holds exactly the named entries (no temp files).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.DeepEqual(t, got, names)
}
