// Package stepimage builds the small images the e2e tests run besides the
// ones ko builds: Tekton's entrypoint, a busybox shell for Tekton's
// place-scripts init container, and tool images for pipeline stand-ins.
// Each is one layer of local files (static binaries), made with
// go-containerregistry and pushed to a registry; nothing is pulled.
package stepimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one file of an image: a copy of Source at Path, a symlink to
// Link when Link is set, or a directory with Mode when Dir is set.
type File struct {
	Path   string
	Source string
	Link   string
	Dir    bool
	Mode   int64
}

// Config is the image's config: entrypoint, env, user.
type Config struct {
	Entrypoint []string
	Env        []string
	User       string
	WorkingDir string
}

// Push builds a linux/amd64 image of files with cfg and pushes it to ref;
// it returns the reference pinned by digest.
func Push(t testing.TB, ref string, files []File, cfg Config, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	layerData, err := tarFiles(files)
	if err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Env = cfg.Env
	cf.Config.User = cfg.User
	cf.Config.WorkingDir = cfg.WorkingDir
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("stepimage: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("stepimage: %s: %v", ref, err)
	}
	return r.Context().Digest(d.String()).String()
}

// tarFiles is a layer tar of files, with the parent directories, sorted
// and with zero times (reproducible).
func tarFiles(files []File) ([]byte, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(strings.TrimPrefix(f.Path, "/")); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		p := strings.TrimPrefix(f.Path, "/")
		if f.Dir {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: f.Mode}); err != nil {
				return nil, err
			}
			continue
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: f.Link, Mode: 0o777}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o755, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// GoBuild builds the main package pkg (an import path or ./dir, resolved in
// the module at dir) as a static linux/amd64 binary and returns its path.
func GoBuild(t testing.TB, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stepimage: go build %s: %v: %s", pkg, err, b)
	}
	return out
}

// Busybox returns the files of a busybox under dir ("/bin" or "/busybox"):
// the binary and one symlink per applet it lists (busybox --list, run on
// this machine, so the binary must be a static linux/amd64 one such as
// Debian's busybox-static).
func Busybox(t testing.TB, binary, dir string) []File {
	t.Helper()
	out, err := exec.Command(binary, "--list").Output()
	if err != nil {
		t.Fatalf("stepimage: %s --list: %v", binary, err)
	}
	files := []File{{Path: path.Join(dir, "busybox"), Source: binary}}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		files = append(files, File{Path: path.Join(dir, applet), Link: "busybox"})
	}
	return files
}

// Tree returns the files under the directory src, recursively, at dst in
// the image: regular files copied, symlinks kept as symlinks.
func Tree(t testing.TB, src, dst string) []File {
	t.Helper()
	var files []File
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		at := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files = append(files, File{Path: at, Link: link})
		case d.Type().IsRegular():
			files = append(files, File{Path: at, Source: p})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("stepimage: tree %s: %v", src, err)
	}
	return files
}

// Dynamic returns a dynamically linked binary at its own path with the
// shared libraries it needs (ldd, run on this machine, so the image must
// be for this machine's platform), each at the path ldd resolves.
func Dynamic(t testing.TB, binary string) []File {
	t.Helper()
	out, err := exec.Command("ldd", binary).Output()
	if err != nil {
		t.Fatalf("stepimage: ldd %s: %v", binary, err)
	}
	files := []File{{Path: binary, Source: binary}}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0] // the dynamic loader
		default:
			continue
		}
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			t.Fatalf("stepimage: %s: %v", lib, err)
		}
		files = append(files, File{Path: lib, Source: real})
	}
	return files
}
