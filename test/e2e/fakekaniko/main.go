// Command fakekaniko stands in for the kaniko executor in the e2e tests
// (public images cannot be pulled where they run). It takes the flags the
// build-export-consume Pipeline passes to kaniko (--dockerfile,
// --context=dir://DIR, --destination, --no-push, --tar-path, --reproducible)
// and understands a Dockerfile of "FROM scratch" and "COPY SRC DEST" lines
// only: each COPY becomes one layer with zero timestamps. It writes the image
// as a docker-archive tarball at --tar-path, tagged --destination, as
// kaniko --no-push --tar-path does, and pushes nothing.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	dockerfile := flag.String("dockerfile", "Dockerfile", "path of the Dockerfile")
	contextDir := flag.String("context", "", "build context, dir://DIR")
	destination := flag.String("destination", "", "image reference the tarball is tagged with")
	flag.Bool("no-push", false, "accepted; nothing is ever pushed")
	tarPath := flag.String("tar-path", "", "where the docker-archive tarball is written")
	flag.Bool("reproducible", false, "accepted; layers always have zero timestamps")
	flag.Parse()
	if *contextDir == "" || *destination == "" || *tarPath == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "fakekaniko: --context, --destination and --tar-path are required, and no arguments")
		os.Exit(2)
	}
	if err := build(*dockerfile, strings.TrimPrefix(*contextDir, "dir://"), *destination, *tarPath); err != nil {
		fmt.Fprintf(os.Stderr, "fakekaniko: %v\n", err)
		os.Exit(1)
	}
}

func build(dockerfile, contextDir, destination, tarPath string) error {
	tag, err := name.NewTag(destination)
	if err != nil {
		return fmt.Errorf("--destination %s: %w", destination, err)
	}
	f, err := os.Open(dockerfile)
	if err != nil {
		return err
	}
	defer f.Close()
	var img v1.Image
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch {
		case strings.EqualFold(fields[0], "FROM") && len(fields) == 2 && fields[1] == "scratch":
			img = empty.Image
		case strings.EqualFold(fields[0], "COPY") && len(fields) == 3 && img != nil:
			layer, err := copyLayer(filepath.Join(contextDir, fields[1]), fields[2])
			if err != nil {
				return fmt.Errorf("%s:%d: %w", dockerfile, line, err)
			}
			if img, err = mutate.AppendLayers(img, layer); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s:%d: only FROM scratch and COPY SRC DEST are understood: %q", dockerfile, line, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if img == nil {
		return fmt.Errorf("%s: no FROM scratch", dockerfile)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return tarball.WriteToFile(tarPath, tag, img)
}

// copyLayer is a layer holding src (a file or a directory tree) at dest.
func copyLayer(src, dest string) (v1.Layer, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := strings.TrimPrefix(path.Join(dest, filepath.ToSlash(rel)), "/")
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: target + "/", Mode: 0o755})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: target, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil })
}
