package main

import (
	"archive/tar"
	"bufio"
	stdgzip "compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

// compressor is one candidate measured on the toolchain layers.
type compressor struct {
	name string
	// perLayer: one stream per layer, the layers at once on every core
	// (single-threaded codecs); else the layers one after the other, each
	// on every core.
	perLayer bool
	writer   func(io.Writer) (io.WriteCloser, error)
}

func pgzipWriter(level int) func(io.Writer) (io.WriteCloser, error) {
	return func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriterLevel(w, level) }
}

func zstdWriter(level zstd.EncoderLevel) func(io.Writer) (io.WriteCloser, error) {
	return func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstd.WithEncoderLevel(level)) }
}

// compressors are the candidates, fastest gzip first: what the floor uses.
var compressors = []compressor{
	{"pgzip 1 (the floor)", false, pgzipWriter(1)},
	{"pgzip 3", false, pgzipWriter(3)},
	{"pgzip 4 (export-step)", false, pgzipWriter(4)},
	{"pgzip 5 (skopeo: containers/image's default)", false, pgzipWriter(5)},
	{"stdlib gzip 1, a stream per layer (go-containerregistry: crane)", true, func(w io.Writer) (io.WriteCloser, error) {
		return stdgzip.NewWriterLevel(w, stdgzip.BestSpeed)
	}},
	{"klauspost gzip 1, a stream per layer", true, func(w io.Writer) (io.WriteCloser, error) { return kgzip.NewWriterLevel(w, 1) }},
	{"klauspost gzip 4, a stream per layer", true, func(w io.Writer) (io.WriteCloser, error) { return kgzip.NewWriterLevel(w, 4) }},
	{"zstd fastest", false, zstdWriter(zstd.SpeedFastest)},
	{"zstd default (export-step -compression zstd)", false, zstdWriter(zstd.SpeedDefault)},
}

// compressorResult is one candidate's best of reps on the layers.
type compressorResult struct {
	Name     string
	Seconds  float64 // fastest of the repetitions
	InBytes  int64
	OutBytes int64
}

// measureCompressors compresses the layer files with every candidate, reps
// times, output discarded (counted).
func measureCompressors(layers []string, reps int) ([]compressorResult, error) {
	var out []compressorResult
	for _, c := range compressors {
		r := compressorResult{Name: c.name}
		for range reps {
			start := time.Now()
			in, n, err := compressFiles(c, layers)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			d := time.Since(start).Seconds()
			if r.Seconds == 0 || d < r.Seconds {
				r.Seconds = d
			}
			r.InBytes, r.OutBytes = in, n
		}
		out = append(out, r)
	}
	return out, nil
}

func compressFiles(c compressor, files []string) (in, out int64, err error) {
	var g errgroup.Group
	if c.perLayer {
		g.SetLimit(runtime.GOMAXPROCS(0))
	} else {
		g.SetLimit(1)
	}
	ins, outs := make([]int64, len(files)), make([]int64, len(files))
	for i, p := range files {
		g.Go(func() error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			cw := &countWriter{w: io.Discard}
			zw, err := c.writer(cw)
			if err != nil {
				return err
			}
			if ins[i], err = io.Copy(zw, f); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			outs[i] = cw.n
			return nil
		})
	}
	err = g.Wait()
	for i := range files {
		in += ins[i]
		out += outs[i]
	}
	return in, out, err
}

// floorCompress reads the docker-archive src ("docker-archive:FILE" or, from
// the Docker engine, "docker-daemon:REF") once, compresses each layer as it
// streams in with the fastest compressor measured (pgzip at level 1, every
// core) into an OCI layout at dir, and returns that image, for floorPush.
func floorCompress(ctx context.Context, src, dir string) (*image, error) {
	var rc io.ReadCloser
	if p, ok := strings.CutPrefix(src, "docker-archive:"); ok {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		rc = f
	} else {
		c, err := client.New(client.FromEnv)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if rc, err = c.ImageSave(ctx, []string{strings.TrimPrefix(src, "docker-daemon:")}); err != nil {
			return nil, err
		}
	}
	defer rc.Close()
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	small := map[string][]byte{}
	layers := map[string]descriptor{}
	tr := tar.NewReader(bufio.NewReaderSize(rc, 1<<20))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(hdr.Name)
		if path.Base(name) == "layer.tar" || strings.HasPrefix(name, "blobs/") {
			if layers[name], err = floorLayer(blobDir, tr); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			continue
		}
		if small[name], err = io.ReadAll(io.LimitReader(tr, 16<<20)); err != nil {
			return nil, err
		}
	}
	var m []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(small["manifest.json"], &m); err != nil || len(m) != 1 {
		return nil, fmt.Errorf("%s: manifest.json: want one image: %v", src, err)
	}
	config, ok := small[path.Clean(m[0].Config)]
	if !ok {
		return nil, fmt.Errorf("%s: no config %s", src, m[0].Config)
	}
	img := &image{dir: dir}
	for _, l := range m[0].Layers {
		d, ok := layers[path.Clean(l)]
		if !ok {
			return nil, fmt.Errorf("%s: no layer %s", src, l)
		}
		img.blobs = append(img.blobs, d)
	}
	cd, err := writeBlob(blobDir, config, configMediaType)
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifestMediaType, "config": cd, "layers": img.blobs})
	if err != nil {
		return nil, err
	}
	md, err := writeBlob(blobDir, manifest, manifestMediaType)
	if err != nil {
		return nil, err
	}
	img.blobs = append(img.blobs, cd)
	img.manifest, img.digest = manifest, md.Digest
	return img, nil
}

// floorLayer compresses r into blobDir with the floor's compressor.
func floorLayer(blobDir string, r io.Reader) (descriptor, error) {
	d, _, err := writeCompressedBlob(blobDir, compressors[0].writer, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
	return d, err
}
