package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
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
}

const (
	layerMediaType    = "application/vnd.oci.image.layer.v1.tar"
	configMediaType   = "application/vnd.oci.image.config.v1+json"
	manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
)

// writeImage writes an OCI layout at dir holding one image whose layers are
// uncompressed tarballs of one file of random (incompressible) bytes each, of
// the given sizes. Layers are streamed to disk, never held in memory. seed
// makes the content repeatable and distinct between shapes.
func writeImage(dir string, sizes []int64, seed uint64) (*image, error) {
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	img := &image{dir: dir}
	var diffIDs []string
	for i, size := range sizes {
		d, err := writeLayer(blobDir, size, rand.NewChaCha8(seedBytes(seed, uint64(i))))
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, dir, err)
		}
		img.blobs = append(img.blobs, d)
		diffIDs = append(diffIDs, d.Digest) // uncompressed: the diff ID is the digest
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

// writeLayer streams a tarball of one file of size random bytes into blobDir.
func writeLayer(blobDir string, size int64, src io.Reader) (descriptor, error) {
	f, err := os.CreateTemp(blobDir, "layer-*")
	if err != nil {
		return descriptor{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	tw := tar.NewWriter(cw)
	if err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return descriptor{}, err
	}
	if _, err := io.CopyN(tw, src, size); err != nil {
		return descriptor{}, err
	}
	if err := tw.Close(); err != nil {
		return descriptor{}, err
	}
	if err := f.Close(); err != nil {
		return descriptor{}, err
	}
	hexd := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobDir, hexd)); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: layerMediaType, Digest: "sha256:" + hexd, Size: cw.n}, nil
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
