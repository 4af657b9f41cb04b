package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// write is Write with the atomic file writer as a parameter (tests make
// it fail).
func write(path string, r *Report, schema Schema, writeFile func(string, []byte, fs.FileMode) error) error {
	prefix := "write report " + path + ": "
	data, err := marshal(r, schema)
	if err != nil {
		return newError(prefix, err, nil)
	}
	if info, err := os.Lstat(path); err == nil && info.IsDir() {
		return newError(prefix, errors.New("is a directory"), nil)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := writeFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
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
