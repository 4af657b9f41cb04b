// Package termination writes a container's termination message file: the
// file Kubernetes shows as the container's terminated.message and Tekton's
// entrypoint fills with a step's results. Kubernetes bind-mounts it into the
// container, so it cannot always be replaced atomically.
package termination

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

// Budget is the size in bytes of a container's termination message, which is
// where Tekton's entrypoint puts a step's results (the default
// results-from: termination-message). Kubernetes caps it at 4096 bytes per
// container; Tekton checks the same bound in
// github.com/tektoncd/pipeline pkg/termination/write.go
// (MaxContainerTerminationMessageLength = 1024 * 4) and fails the step
// ("Termination message is above max allowed size 4096") when results
// exceed it.
const Budget = 4096

// Write writes data to the termination message file at path, atomically
// where it can (with fsync, synced to disk before it is renamed into place).
// Kubernetes bind-mounts the termination message file into the container,
// and renaming onto a mount point fails (EBUSY), as does making a temp file
// beside it in a read-only /dev; then the file is rewritten in place, which
// is safe because the kubelet reads it only after the container exits. A
// path that is a symlink is never written through in place.
func Write(path string, data []byte, fsync bool, log *slog.Logger) error {
	return writer{replace: atomicfile.ReplaceFile, synced: atomicfile.WriteFile}.write(path, data, fsync, log)
}

// writer holds the atomic writes Write tries first; tests give ones that
// fail the way a bind mount does.
type writer struct {
	replace, synced func(path string, data []byte, perm fs.FileMode) error
}

func (w writer) write(path string, data []byte, fsync bool, log *slog.Logger) error {
	write := w.replace
	if fsync {
		write = w.synced
	}
	err := write(path, data, 0o644)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) &&
		!errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	log.Debug("termination message: atomic replace impossible, writing in place", "path", path, "reason", err)
	// O_NOFOLLOW: a termination message path that is a symlink is never
	// written through (the bind-mounted file is a real file).
	f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|openNoFollow, 0)
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	if _, werr := f.Write(data); werr != nil {
		f.Close()
		return werr
	}
	if fsync {
		if serr := f.Sync(); serr != nil {
			f.Close()
			return serr
		}
	}
	return f.Close()
}
