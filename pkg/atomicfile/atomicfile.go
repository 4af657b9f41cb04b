// Package atomicfile replaces files so that a reader sees the old content or
// the new, never a part: a temp file in the same directory, renamed over the
// target. Every output of the commands is written this way.
//
// Write and WriteFile also make the result durable (fsync of the file
// before the rename, of the directory after it), for outputs that must
// survive a crash of the machine: export-step's report, OCI layout and layer
// cache. Replace and ReplaceFile skip the fsyncs, for outputs read on the
// same machine before anything could lose them: report2results' Tekton
// results (an emptyDir read when the container exits) and, unless -fsync,
// its OCI layout. On a 2-core machine under load each fsync costs 0.2-20
// ms (the first one commits the filesystem journal), most of report2results'
// run (docs/results.md).
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with what fill writes, with permissions perm, durably.
// On any failure the temp file is removed and path is left as it was.
func Write(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	return osFiles.write(path, perm, fill, nil, true)
}

// Replace is Write without the fsyncs: atomic for every reader, not
// durable across a crash of the machine.
func Replace(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	return osFiles.write(path, perm, fill, nil, false)
}

// files are the calls that can fail once the temp file exists, besides
// writing it; tests give write ones that fail.
type files struct {
	sync   func(*os.File) error
	rename func(oldpath, newpath string) error
}

// osFiles are the real calls.
var osFiles = files{sync: (*os.File).Sync, rename: os.Rename}

// write writes what fill writes (buffered), or else data.
func (fsys files) write(path string, perm fs.FileMode, fill func(io.Writer) error, data []byte, durable bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the first error is the one returned
			os.Remove(f.Name())
		}
	}()
	if fill == nil {
		if _, err = f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
	} else {
		w := bufio.NewWriterSize(f, 64<<10)
		if err = fill(w); err != nil {
			return err
		}
		if err = w.Flush(); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		if err = fsys.sync(f); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = fsys.rename(f.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	// Make the rename durable; not every filesystem can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WriteFile replaces path with data, with permissions perm, durably.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return osFiles.write(path, perm, nil, data, true)
}

// ReplaceFile is WriteFile without the fsyncs.
func ReplaceFile(path string, data []byte, perm fs.FileMode) error {
	return osFiles.write(path, perm, nil, data, false)
}
