package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// image is a synthetic image in an OCI layout: its blobs (layers, then the
// config) and its manifest.
type image struct {
	dir      string
	blobs    []descriptor
	manifest []byte
	digest   string // of manifest
	// The compression shapes' sources instead of a layout: a docker-archive
	// or an image in the Docker engine, rawBytes of uncompressed layers.
	archive, daemonRef string
	rawBytes           int64
}

const (
	layerMediaType    = "application/vnd.oci.image.layer.v1.tar+gzip"
	configMediaType   = "application/vnd.oci.image.config.v1+json"
	manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
)

// writeImage writes an OCI layout at dir holding one image whose layers are
// gzip-compressed tarballs (as builders write them) of one file of random
// (incompressible) bytes each, of the given sizes. Layers are streamed to
// disk, never held in memory. seed makes the content repeatable and distinct
// between shapes; the layer at index changed (-1: none) gets other content,
// for the rebuild shape.
func writeImage(dir string, sizes []int64, seed uint64, changed int) (*image, error) {
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	img := &image{dir: dir}
	var diffIDs []string
	for i, size := range sizes {
		layerSeed := seedBytes(seed, uint64(i))
		if i == changed {
			layerSeed = seedBytes(seed, uint64(i)+1<<32)
		}
		d, diffID, err := writeLayer(blobDir, size, rand.NewChaCha8(layerSeed))
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, dir, err)
		}
		img.blobs = append(img.blobs, d)
		diffIDs = append(diffIDs, diffID)
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, err
	}
	cd, err := writeBlob(blobDir, config, configMediaType)
	if err != nil {
		return nil, err
	}
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     manifestMediaType,
		"config":        cd,
		"layers":        img.blobs,
	})
	if err != nil {
		return nil, err
	}
	md, err := writeBlob(blobDir, m, manifestMediaType)
	if err != nil {
		return nil, err
	}
	img.blobs = append(img.blobs, cd)
	img.manifest, img.digest = m, md.Digest
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{md},
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return nil, err
	}
	return img, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func seedBytes(a, b uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(a >> (8 * i))
		s[8+i] = byte(b >> (8 * i))
	}
	return s
}

// writeLayer streams a gzip'd tarball of one file of size random bytes into
// blobDir, returning its descriptor and diff ID.
func writeLayer(blobDir string, size int64, src io.Reader) (descriptor, string, error) {
	gz := func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.BestSpeed) }
	return writeCompressedBlob(blobDir, gz, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, src, size); err != nil {
			return err
		}
		return tw.Close()
	})
}

// writeCompressedBlob streams what fill writes, compressed by compress, into
// a blob of blobDir named by its digest, returning its descriptor and the
// digest of what fill wrote (the diff ID).
func writeCompressedBlob(blobDir string, compress func(io.Writer) (io.WriteCloser, error), fill func(io.Writer) error) (descriptor, string, error) {
	f, err := os.CreateTemp(blobDir, "layer-*")
	if err != nil {
		return descriptor{}, "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h, diff := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	zw, err := compress(bw)
	if err != nil {
		return descriptor{}, "", err
	}
	if err := fill(io.MultiWriter(zw, diff)); err != nil {
		return descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return descriptor{}, "", err
	}
	if err := bw.Flush(); err != nil {
		return descriptor{}, "", err
	}
	if err := f.Close(); err != nil {
		return descriptor{}, "", err
	}
	hexd := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobDir, hexd)); err != nil {
		return descriptor{}, "", err
	}
	return descriptor{MediaType: layerMediaType, Digest: "sha256:" + hexd, Size: cw.n}, "sha256:" + hex.EncodeToString(diff.Sum(nil)), nil
}

func writeBlob(blobDir string, b []byte, mediaType string) (descriptor, error) {
	sum := sha256.Sum256(b)
	hexd := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(blobDir, hexd), b, 0o644); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hexd, Size: int64(len(b))}, nil
}

func (img *image) blobPath(d descriptor) string {
	return filepath.Join(img.dir, "blobs", "sha256", d.Digest[len("sha256:"):])
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
