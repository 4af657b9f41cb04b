package export

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// openDaemonStream reads the image ref from the Docker daemon with one
// image save (GET /images/get): its files are read as they stream in, the
// metadata into memory, every other file (the layers) into the scratch
// directory, compressed on the way if it is not already, so that nothing is
// read twice and no layer is held in memory. The layers are then checked
// against the image config's diff IDs.
//
// go-containerregistry's daemon image instead saves the whole image again
// for every layer it opens (with WithUnbufferedOpener) or into a temporary
// file first, and then compresses each layer twice on one core.
func openDaemonStream(ctx context.Context, ref name.Reference, o sourceOptions) (Artifact, error) {
	if _, err := o.docker.ImageInspect(ctx, ref.Name()); err != nil {
		if isNotFound(err) {
			return nil, badinput.Errorf("the Docker daemon has no image %s: %w", ref, err)
		}
		return nil, fmt.Errorf("docker daemon: %w", err)
	}
	rc, err := o.docker.ImageSave(ctx, []string{ref.Name()})
	if err != nil {
		return nil, fmt.Errorf("docker daemon: save %s: %w", ref, err)
	}
	defer rc.Close()
	s, err := readSaveStream(rc, o)
	if err != nil {
		return nil, fmt.Errorf("docker daemon: save %s: %w", ref, err)
	}
	img, err := s.image(o)
	if err != nil {
		return nil, fmt.Errorf("docker daemon: image %s: %w", ref, err)
	}
	return img, nil
}

// savedFile is one file of a save stream: in memory (metadata) or in the
// scratch directory, compressed.
type savedFile struct {
	data []byte
	blob compressedBlob // file, digest and size; diffID when compressed here
	held Compression    // the stream held it compressed so already
	link string         // cleaned target of a link
}

type saveStream map[string]*savedFile

// readSaveStream reads a docker-archive stream through once.
func readSaveStream(r io.Reader, o sourceOptions) (saveStream, error) {
	s := saveStream{}
	tr := tar.NewReader(r)
	br := bufio.NewReaderSize(nil, 64<<10)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		clean, ok := archivePath(hdr.Name)
		if !ok {
			return nil, fmt.Errorf("tar entry %q escapes the archive", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target, err := linkTarget(clean, hdr)
			if err != nil {
				return nil, err
			}
			s[clean] = &savedFile{link: target}
		case tar.TypeReg:
			f := &savedFile{}
			if isSaveMetadata(clean) && hdr.Size <= maxMetadataBytes {
				if f.data, err = io.ReadAll(tr); err != nil {
					return nil, fmt.Errorf("%s: %w", clean, err)
				}
			} else {
				br.Reset(tr)
				head, _ := br.Peek(4)
				if f.held = sniffCompression(head); f.held != "" {
					f.blob, err = copyToFile(o.scratch, br)
				} else {
					f.blob, err = o.compression.compressToFile(o.scratch, br)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", clean, err)
				}
			}
			s[clean] = f
		}
	}
	return s, nil
}

// isSaveMetadata: the small files of a save stream, read into memory.
func isSaveMetadata(p string) bool {
	switch base := path.Base(p); {
	case path.Ext(base) == ".json", base == "repositories", base == "VERSION", base == "oci-layout":
		return true
	}
	return false
}

func (s saveStream) resolve(p string) (*savedFile, error) {
	clean, err := resolveLinks(p, func(p string) (string, bool) {
		f, ok := s[p]
		if !ok {
			return "", false
		}
		return f.link, true
	})
	if err != nil {
		return nil, err
	}
	return s[clean], nil
}

// bytes reads a file that should be small (manifest.json, the config).
func (s saveStream) bytes(p string) ([]byte, error) {
	f, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if f.blob.file == "" {
		return f.data, nil
	}
	if f.blob.size > maxMetadataBytes {
		return nil, fmt.Errorf("%s is %d bytes compressed, more than the %d allowed", p, f.blob.size, maxMetadataBytes)
	}
	// A config stored as a blob (the OCI layout of Docker >= 25's save) was
	// compressed like a layer: decompress it.
	file, err := os.Open(f.blob.file)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var r io.Reader
	var head [4]byte
	if n, _ := file.ReadAt(head[:], 0); sniffCompression(head[:n]) == CompressionZstd {
		zr, err := zstd.NewReader(file, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	} else {
		zr, err := pgzip.NewReader(file)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	return io.ReadAll(io.LimitReader(r, maxMetadataBytes+1))
}

// image builds the one image of the stream.
func (s saveStream) image(o sourceOptions) (Artifact, error) {
	raw, err := s.bytes("manifest.json")
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("manifest.json lists %d images, want 1", len(m))
	}
	d := m[0]
	if len(d.LayerSources) > 0 {
		return nil, errors.New("the image has foreign layers, which this source cannot read; save it with docker save and use -source docker-archive:FILE")
	}
	rawCfg, err := s.bytes(d.Config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", d.Config, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, fmt.Errorf("config %s lists %d layers, manifest.json %d", d.Config, len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	layers := make([]*rawLayer, len(d.Layers))
	for i, lp := range d.Layers {
		f, err := s.resolve(lp)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		if f.blob.file == "" {
			return nil, fmt.Errorf("layer %d: %s is not a layer", i+1, lp)
		}
		diffID := cfg.RootFS.DiffIDs[i]
		if f.held == "" && f.blob.diffID != diffID {
			return nil, fmt.Errorf("layer %d (%s): its content has digest %s, the image config says %s", i+1, lp, f.blob.diffID, diffID)
		}
		file := f.blob.file
		l := &rawLayer{
			open:   func() (io.ReadCloser, error) { return os.Open(file) },
			held:   f.held,
			key:    file,
			diffID: diffID,
			what:   fmt.Sprintf("layer %d (%s)", i+1, lp),
			codec:  o.compression,
			blob:   f.blob,
		}
		l.once.Do(func() {}) // compressed already
		layers[i] = l
	}
	return newRawImage(rawCfg, layers, o.compression, o.compressJobs)
}
