package termination

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestWriteMessageInPlace: where the termination message cannot be
// replaced by rename (Kubernetes bind-mounts the file: EBUSY), it is
// rewritten in place; other errors are not hidden.
func TestWriteMessageInPlace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
	}{
		{"bind mount", &fs.PathError{Op: "rename", Path: "termination-log", Err: syscall.EBUSY}, ""},
		{"read-only directory", &fs.PathError{Op: "open", Path: "termination-log.tmp", Err: syscall.EROFS}, ""},
		{"disk full", &fs.PathError{Op: "write", Path: "termination-log.tmp", Err: syscall.ENOSPC}, "no space left"},
	} {
		for _, fsync := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, fsync %v", tc.name, fsync), func(t *testing.T) {
				var used string
				w := writer{
					replace: func(string, []byte, fs.FileMode) error { used = "replace"; return tc.err },
					synced:  func(string, []byte, fs.FileMode) error { used = "synced"; return tc.err },
				}
				path := filepath.Join(t.TempDir(), "termination-log")
				assert.NilError(t, os.WriteFile(path, []byte("old content, longer than the new"), 0o644))
				err := w.write(path, []byte(`{"image":{}}`), fsync, slog.New(slog.DiscardHandler))
				assert.Equal(t, used, map[bool]string{false: "replace", true: "synced"}[fsync])
				b, rerr := os.ReadFile(path)
				assert.NilError(t, rerr)
				if tc.wantErr != "" {
					assert.ErrorContains(t, err, tc.wantErr)
					assert.Equal(t, string(b), "old content, longer than the new")
					return
				}
				assert.NilError(t, err)
				assert.Equal(t, string(b), `{"image":{}}`)
			})
		}
	}
}

// TestInPlaceNeverThroughASymlink: the termination message written in
// place (a bind mount) is a symlink: refused, the file it points to keeps
// its content.
func TestInPlaceNeverThroughASymlink(t *testing.T) {
	const outside = "outside: must not change"
	w := writer{replace: func(string, []byte, fs.FileMode) error {
		return &fs.PathError{Op: "rename", Path: "termination-log", Err: syscall.EBUSY}
	}}
	target := filepath.Join(t.TempDir(), "target")
	assert.NilError(t, os.WriteFile(target, []byte(outside), 0o644))
	p := filepath.Join(t.TempDir(), "termination-log")
	assert.NilError(t, os.Symlink(target, p))
	err := w.write(p, []byte(`{"image":{}}`), false, slog.New(slog.DiscardHandler))
	assert.Check(t, errors.Is(err, syscall.ELOOP), "got %v", err)
	b, rerr := os.ReadFile(target)
	assert.NilError(t, rerr)
	assert.Check(t, is.Equal(string(b), outside), "written through the symlink")
}
