package main

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// errNoDocker: the daemon shape needs a Docker engine; without one it is
// skipped (and the report says so).
var errNoDocker = errors.New("no Docker engine answers `docker version`; start one with hack/start-dockerd")

// sourceCache makes each shape's source once: OCI layouts by seed (and the
// rebuild's previous build), the toolchain docker-archive, the image loaded
// into the Docker engine.
type sourceCache struct {
	work    string
	quick   bool
	layouts map[string]*image
	tc      *toolchainImage
	loaded  string // image loaded into the engine, removed by cleanup
}

// get returns the image a shape pushes and, for a rebuild, the previous
// build.
func (c *sourceCache) get(ctx context.Context, s shape) (img, prev *image, err error) {
	switch s.source {
	case "archive":
		tc, err := c.toolchain()
		if err != nil {
			return nil, nil, err
		}
		return &image{archive: tc.archive, rawBytes: tc.rawBytes}, nil, nil
	case "daemon":
		tc, err := c.toolchain()
		if err != nil {
			return nil, nil, err
		}
		if err := c.load(ctx, tc); err != nil {
			return nil, nil, err
		}
		return &image{daemonRef: tc.ref, rawBytes: tc.rawBytes}, nil, nil
	}
	if img, err = c.layout(s.sizes, s.seed, -1); err != nil {
		return nil, nil, err
	}
	if s.rebuild {
		// The image pushed is the one with the changed layer; the
		// previous build is the plain one.
		prev = img
		if img, err = c.layout(s.sizes, s.seed, s.changedLayer()); err != nil {
			return nil, nil, err
		}
	}
	return img, prev, nil
}

func (c *sourceCache) layout(sizes []int64, seed uint64, changed int) (*image, error) {
	key := strconv.FormatUint(seed, 10)
	if changed >= 0 {
		key += "-changed" + strconv.Itoa(changed)
	}
	if img, ok := c.layouts[key]; ok {
		return img, nil
	}
	slog.Info("writing the OCI layout", "key", key, "layers", len(sizes))
	img, err := writeImage(filepath.Join(c.work, "layout-"+key), sizes, seed, changed)
	if err != nil {
		return nil, err
	}
	c.layouts[key] = img
	return img, nil
}

// toolchain writes the docker-archive of the compression shapes once.
func (c *sourceCache) toolchain() (*toolchainImage, error) {
	if c.tc != nil {
		return c.tc, nil
	}
	slog.Info("writing the toolchain docker-archive", "goroot", runtime.GOROOT())
	tc, err := writeToolchainArchive(filepath.Join(c.work, "toolchain"), runtime.GOROOT(), toolchainLayers(c.quick))
	if err != nil {
		return nil, fmt.Errorf("write the toolchain docker-archive: %w", err)
	}
	c.tc = tc
	return tc, nil
}

// load puts the toolchain image into the Docker engine (docker load).
func (c *sourceCache) load(ctx context.Context, tc *toolchainImage) error {
	if c.loaded != "" {
		return nil
	}
	if err := exec.CommandContext(ctx, "docker", "version").Run(); err != nil {
		return errNoDocker
	}
	slog.Info("loading the toolchain image into the Docker engine", "ref", tc.ref)
	if out, err := exec.CommandContext(ctx, "docker", "load", "-i", tc.archive).CombinedOutput(); err != nil {
		return fmt.Errorf("docker load: %w: %s", err, strings.TrimSpace(string(out)))
	}
	c.loaded = tc.ref
	return nil
}

// cleanup removes the image loaded into the engine.
func (c *sourceCache) cleanup(ctx context.Context) {
	if c.loaded == "" {
		return
	}
	if out, err := exec.CommandContext(ctx, "docker", "image", "rm", "--force", c.loaded).CombinedOutput(); err != nil {
		slog.Warn("could not remove the toolchain image from the Docker engine", "ref", c.loaded, "err", err, "out", string(out))
	}
}

// zstdPull pushes an image with -compression zstd to a fresh registry and
// asks the Docker engine to pull it: what it answers is reported as it is
// (issue 14: which runtimes can pull zstd). The image is one layer of random
// bytes made for this run, so the engine has none of its layers already (a
// layer it has is not unpacked, and the pull would succeed whatever the
// compression).
func zstdPull(ctx context.Context, h *harness) (string, error) {
	if err := exec.CommandContext(ctx, "docker", "version").Run(); err != nil {
		return "", errNoDocker
	}
	version, _ := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output()
	dir, err := os.MkdirTemp(h.work, "zstd-pull-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "root", "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(data, "random"))
	if err != nil {
		return "", err
	}
	_, err = io.CopyN(f, cryptorand.Reader, 1<<20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	tc, err := writeToolchainArchive(dir, filepath.Join(dir, "root"), [][]string{{"data"}})
	if err != nil {
		return "", err
	}
	reg, err := startRegistry(ctx, h.work)
	if err != nil {
		return "", err
	}
	defer reg.stop()
	ref := reg.host + "/bench/zstd:1"
	if _, _, err := pushExportStepZstd(ctx, h, reg.host, &image{archive: tc.archive}, []string{ref}, false); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "docker", "pull", "-q", ref).CombinedOutput()
	exec.CommandContext(ctx, "docker", "image", "rm", "--force", ref).Run()
	outcome := "pulled and unpacked"
	if err != nil {
		outcome = "failed: " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("Docker %s, `docker pull` of a new image (one layer, 1 MiB of random bytes) that export-step pushed with `-compression zstd`: %s", strings.TrimSpace(string(version)), outcome), nil
}
