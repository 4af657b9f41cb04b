// Command sampleimage writes a small, deterministic OCI image layout for the
// quick start: three tiny layers with fixed content and timestamps, a config
// with a Cmd, tagged "latest". The same Go version gives the same digest on
// every run; the digest is printed on stdout.
//
//	go run ./hack/sampleimage -o DIR
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// created is the fixed time of every file and of the config.
var created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// layers are the image's layers, bottom first: one file each.
var layers = []struct{ dir, file, content string }{
	{"etc/", "etc/motd", "exportreport quick start\n"},
	{"app/", "app/hello.sh", "#!/bin/sh\necho hello from the exportreport sample image\n"},
	{"app/", "app/VERSION", "1.0.0\n"},
}

func main() {
	out := flag.String("o", "", "write the OCI image layout to `DIR` (its index.json is replaced)")
	tag := flag.String("tag", "latest", "the org.opencontainers.image.ref.name of the image in the layout")
	arch := flag.String("arch", "amd64", "the image's architecture (OS is linux)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: sampleimage -o DIR [-tag TAG] [-arch ARCH]")
		os.Exit(2)
	}
	digest, err := write(*out, *tag, *arch)
	if err != nil {
		slog.Error("sample image", "dir", *out, "err", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

func write(dir, tag, arch string) (v1.Hash, error) {
	img, err := build(arch)
	if err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(dir, empty.Index) // a fresh index.json
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("layout %s: %w", dir, err)
	}
	return img.Digest()
}

func build(arch string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range layers {
		data, err := tarOf(l.dir, l.file, l.content)
		if err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "hack/sampleimage",
		}})
		if err != nil {
			return nil, err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Cmd = []string{"/bin/sh", "/app/hello.sh"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "exportreport sample"}
	return mutate.ConfigFile(img, cfg)
}

// tarOf is a tar of one file and its directory, with fixed owner, mode and
// time.
func tarOf(dir, file, content string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	headers := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: created, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: file, Mode: 0o755, Size: int64(len(content)), ModTime: created, Format: tar.FormatPAX},
	}
	for _, h := range headers {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
