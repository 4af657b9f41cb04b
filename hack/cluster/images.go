package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// images are the references, pinned by digest, of what the cluster itself
// pulls from its registry: the pod sandbox image and the images Tekton's
// controller puts into every TaskRun Pod.
type images struct {
	pause             string
	entrypoint        string
	nop               string
	sidecarLogResults string
	workingDirInit    string
	shell             string
}

// imageFile is one file of an image layer: a copy of Source at Path, or a
// symlink to Link.
type imageFile struct {
	Path   string
	Source string
	Link   string
}

// pushImages builds the cluster's own images from the binaries built for
// it (static, CGO_ENABLED=0) and Debian's static busybox, as ko lays its
// images out (/ko-app/NAME), user 65532 like Tekton's released images, and
// pushes them to the registry. Nothing is pulled from the internet.
func (c *cluster) pushImages(ctx context.Context) error {
	bin := c.opts.TektonBin
	ko := func(repo, binary string) (string, error) {
		return c.pushImage(ctx, repo, []imageFile{{Path: "/ko-app/" + binary, Source: filepath.Join(bin, binary)}},
			v1.Config{Entrypoint: []string{"/ko-app/" + binary}, User: "65532"})
	}
	var err error
	im := &c.images
	if im.pause, err = c.pushImage(ctx, "pause", []imageFile{{Path: "/pause", Source: filepath.Join(bin, "pause")}},
		v1.Config{Entrypoint: []string{"/pause"}, User: "65535"}); err != nil {
		return err
	}
	for _, x := range []struct {
		ref *string
		bin string
	}{
		{&im.entrypoint, "entrypoint"},
		{&im.nop, "nop"},
		{&im.sidecarLogResults, "sidecarlogresults"},
		{&im.workingDirInit, "workingdirinit"},
	} {
		if *x.ref, err = ko("tekton/"+x.bin, x.bin); err != nil {
			return err
		}
	}
	shell, err := busyboxFiles(c.opts.Busybox, "/bin")
	if err != nil {
		return err
	}
	im.shell, err = c.pushImage(ctx, "tekton/busybox", shell, v1.Config{Env: []string{"PATH=/bin"}, User: "65532"})
	return err
}

// busyboxFiles is a static busybox under dir with a symlink per applet.
func busyboxFiles(binary, dir string) ([]imageFile, error) {
	out, err := exec.Command(binary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", binary, err)
	}
	files := []imageFile{{Path: path.Join(dir, "busybox"), Source: binary}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files = append(files, imageFile{Path: path.Join(dir, applet), Link: "busybox"})
		}
	}
	return files, nil
}

// pushImage pushes a one-layer linux/amd64 OCI image of files to
// REGISTRY/repo:latest and returns its reference by digest.
func (c *cluster) pushImage(ctx context.Context, repo string, files []imageFile, cfg v1.Config) (string, error) {
	ref, err := name.ParseReference(c.s.Registry+"/"+repo, name.Insecure)
	if err != nil {
		return "", err
	}
	dir := c.s.path("images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	layerPath := filepath.Join(dir, strings.ReplaceAll(repo, "/", "_")+".tar")
	if err := writeLayer(layerPath, files); err != nil {
		return "", fmt.Errorf("image %s: %w", repo, err)
	}
	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}

// writeLayer writes files as a layer tar with their parent directories,
// sorted, with zero times.
func writeLayer(dest string, files []imageFile) error {
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
	out, err := os.Create(dest)
	if err != nil {
		return err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	sorted := append([]imageFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		p := strings.TrimPrefix(f.Path, "/")
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: f.Link, Mode: 0o777}); err != nil {
				return err
			}
			continue
		}
		if err := copyIntoTar(tw, p, f.Source); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}

func copyIntoTar(tw *tar.Writer, name, source string) error {
	in, err := os.Open(source)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}
