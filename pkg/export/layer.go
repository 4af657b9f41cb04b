package export

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// tarStreams counts directory tar streams produced (each one compressed or
// hashed once): each reads every file of the directory.
var tarStreams atomic.Int64

// appendValue formats an AppendSpec as the -append flag value it came from.
func appendValue(s AppendSpec) string {
	if s.Dest == "" {
		return s.Dir
	}
	return s.Dir + ":" + s.Dest
}

// layerEntry is one file of a directory to be archived.
type layerEntry struct {
	rel  string // slash-separated path relative to the directory; "." is the directory
	abs  string
	info fs.FileInfo
	link string // symlink target, as it is
}

// dirLayer describes the layer built from one -append value.
type dirLayer struct {
	spec    AppendSpec
	prefix  string // "" or "a/b/" : where the directory goes in the image
	created time.Time
	entries []layerEntry
}

// destPrefix turns Dest ("/", "", "/app", "app/data/") into "" or "app/data/".
func destPrefix(spec AppendSpec) (string, error) {
	d := strings.ReplaceAll(spec.Dest, `\`, "/")
	for _, part := range strings.Split(d, "/") {
		if part == ".." {
			return "", badinput.Errorf("-append %q: destination %q must not contain '..'", appendValue(spec), spec.Dest)
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+d), "/")
	if c == "" {
		return "", nil
	}
	return c + "/", nil
}

// scanDir lists a directory for archiving: every entry, sorted, symlinks
// not followed. Files other than regular files, directories and symlinks are
// an error, as is a missing or non-directory root.
func scanDir(spec AppendSpec, created time.Time) (*dirLayer, error) {
	prefix, err := destPrefix(spec)
	if err != nil {
		return nil, err
	}
	flag := appendValue(spec)
	if spec.Dir == "" {
		return nil, badinput.Errorf("-append %q: no directory given", flag)
	}
	root, err := os.Stat(spec.Dir) // the root may be a symlink to a directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badinput.Errorf("-append %q: %s does not exist", flag, spec.Dir)
	}
	if err != nil {
		return nil, badinput.Errorf("-append %q: %w", flag, err)
	}
	if !root.IsDir() {
		return nil, badinput.Errorf("-append %q: %s is not a directory", flag, spec.Dir)
	}
	dl := &dirLayer{spec: spec, prefix: prefix, created: created}
	dl.entries = append(dl.entries, layerEntry{rel: ".", abs: spec.Dir, info: root})
	if err := dl.walk(spec.Dir, ""); err != nil {
		return nil, err
	}
	return dl, nil
}

func (dl *dirLayer) walk(abs, rel string) error {
	des, err := os.ReadDir(abs) // sorted by name
	if err != nil {
		return badinput.Errorf("-append %q: %w", appendValue(dl.spec), err)
	}
	for _, de := range des {
		a := filepath.Join(abs, de.Name())
		r := path.Join(rel, de.Name())
		fi, err := os.Lstat(a)
		if err != nil {
			return badinput.Errorf("-append %q: %w", appendValue(dl.spec), err)
		}
		e := layerEntry{rel: r, abs: a, info: fi}
		switch {
		case fi.Mode().IsRegular():
		case fi.IsDir():
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.link, err = os.Readlink(a); err != nil {
				return badinput.Errorf("-append %q: %w", appendValue(dl.spec), err)
			}
		default:
			return badinput.Errorf("-append %q: %s is a %s; only regular files, directories and symlinks can be added",
				appendValue(dl.spec), a, fileType(fi.Mode()))
		}
		dl.entries = append(dl.entries, e)
		if fi.IsDir() {
			if err := dl.walk(a, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return m.Type().String()
}

// tarMode keeps the permission bits and setuid, setgid and sticky.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// writeTar writes the layer's tar stream: parent directories of the
// destination (0755), then the directory and everything in it, owned by
// 0:0 with no user or group names and mtime created.
func (dl *dirLayer) writeTar(ctx context.Context, w io.Writer) error {
	tarStreams.Add(1)
	tw := tar.NewWriter(w)
	hdr := func(name string) *tar.Header {
		return &tar.Header{Name: name, ModTime: dl.created, Uid: 0, Gid: 0}
	}
	if dl.prefix != "" {
		parts := strings.Split(strings.TrimSuffix(dl.prefix, "/"), "/")
		for i := 1; i < len(parts); i++ {
			h := hdr(strings.Join(parts[:i], "/") + "/")
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
	}
	for _, e := range dl.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := dl.prefix + e.rel
		if e.rel == "." {
			if dl.prefix == "" {
				continue // the image's root directory is not ours to change
			}
			name = dl.prefix
		}
		h := hdr(name)
		h.Mode = tarMode(e.info.Mode())
		switch {
		case e.info.IsDir():
			h.Typeflag = tar.TypeDir
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case e.info.Mode()&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, e.info.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("-append %q: %s: %w", appendValue(dl.spec), e.abs, err)
		}
		if h.Typeflag == tar.TypeReg {
			if err := copyFile(tw, e); err != nil {
				return fmt.Errorf("-append %q: %w", appendValue(dl.spec), err)
			}
		}
	}
	return tw.Close()
}

// copyFile copies a regular file, making sure it is the file that was
// listed (not something swapped in since, like a symlink leading outside
// the directory) and that its size did not change.
func copyFile(w io.Writer, e layerEntry) error {
	f, err := os.Open(e.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, e.info) || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s changed while the layer was built", e.abs)
	}
	n, err := io.CopyN(w, f, e.info.Size())
	if err != nil {
		return fmt.Errorf("%s: read %d of %d bytes (did it change while the layer was built?): %w", e.abs, n, e.info.Size(), err)
	}
	return nil
}

// opener streams the layer's tar through a pipe; every call walks the
// listed files again, nothing is held in memory.
func (dl *dirLayer) opener(ctx context.Context) tarball.Opener {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(dl.writeTar(ctx, pw))
		}()
		return pr, nil
	}
}

// layer builds the layer without a cache: gzip-compressed when read (once to
// compute the digest, again for every upload).
func (dl *dirLayer) layer(ctx context.Context) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(dl.opener(ctx), tarball.WithCompressionLevel(layerGzipLevel))
	if err != nil {
		return nil, fmt.Errorf("-append %q: build layer: %w", appendValue(dl.spec), err)
	}
	return l, nil
}
