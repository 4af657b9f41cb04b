package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Seams for fault injection in tests.
var (
	renameFile = os.Rename
	syncFile   = (*os.File).Sync
)

func write(path string, r *Report, schema Schema) error {
	prefix := "write report " + path + ": "
	data, err := marshal(r, schema)
	if err != nil {
		return newError(prefix, err, nil)
	}
	if info, err := os.Lstat(path); err == nil && info.IsDir() {
		return newError(prefix, errors.New("is a directory"), nil)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with data: temp file in the same directory,
// fsync, chmod 0644, close, rename, fsync the directory. On failure the temp
// file is removed and path is untouched.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error is the first one
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = syncFile(f); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = renameFile(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync directories.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func remove(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove report %s: %w", path, err)
	}
	if info.IsDir() {
		return newError("remove report "+path+": ", errors.New("is a directory, not a report"), nil)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove report %s: %w", path, err)
	}
	return nil
}
