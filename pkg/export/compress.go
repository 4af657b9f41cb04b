package export

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// Compression is how layers that a source holds uncompressed (a docker-archive,
// the Docker daemon) are compressed before they are pushed (-compression).
// Layers a source holds compressed are pushed as they are.
type Compression string

const (
	// CompressionGzip: gzip (the default), readable by every runtime.
	CompressionGzip Compression = "gzip"
	// CompressionZstd: zstd, OCI's application/vnd.oci.image.layer.v1.tar+zstd
	// (containerd >= 1.5; docs/benchmarks.md says what Docker 20.10 does).
	CompressionZstd Compression = "zstd"
)

// ParseCompression reads a -compression value; "" is gzip.
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", CompressionGzip:
		return CompressionGzip, nil
	case CompressionZstd:
		return CompressionZstd, nil
	}
	return "", badinput.Errorf("-compression %q: want gzip or zstd", s)
}

// String makes Compression a flag.Value.
func (c *Compression) String() string { return string(*c) }

// Set makes Compression a flag.Value.
func (c *Compression) Set(s string) error {
	if s != string(CompressionGzip) && s != string(CompressionZstd) {
		return errors.New("want gzip or zstd")
	}
	*c = Compression(s)
	return nil
}

// The compressors, chosen by measuring (docs/benchmarks.md, "Compressors"):
// on the Go toolchain layers, klauspost/pgzip at level 4 is within 5 % of
// the size skopeo stores (pgzip at its default level 5) and compresses on
// every core; level 3 is faster but 6.5 % larger. Both codecs write the same
// bytes whatever the number of cores or goroutines: pgzip cuts the input
// into blocks of a fixed size (each compressed with the previous block's
// tail as its dictionary) and writes them in order; zstd's encoder finds
// matches on one goroutine. TestCompressionDeterministic checks it.
const (
	gzipLevel     = 4
	gzipBlockSize = 1 << 20
	zstdLevel     = zstd.SpeedDefault
)

// layerMediaType is the media type of a layer compressed with c, in a Docker
// (oci false) or OCI manifest. zstd exists only in OCI's media types.
func (c Compression) layerMediaType(oci bool) types.MediaType {
	switch {
	case c == CompressionZstd:
		return types.OCILayerZStd
	case oci:
		return types.OCILayer
	}
	return types.DockerLayer
}

// newWriter returns a compressor writing to w.
func (c Compression) newWriter(w io.Writer) (io.WriteCloser, error) {
	if c == CompressionZstd {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel))
	}
	zw, err := pgzip.NewWriterLevel(w, gzipLevel)
	if err != nil {
		return nil, err
	}
	// The header's modification time: the Unix epoch, as the standard
	// library writes for a zero time (pgzip would write the zero time's
	// seconds cut to 32 bits).
	zw.ModTime = time.Unix(0, 0)
	if err := zw.SetConcurrency(gzipBlockSize, max(2, runtime.GOMAXPROCS(0))); err != nil {
		return nil, err
	}
	return zw, nil
}

// compressedBlob is a blob compressed once into a file of the scratch
// directory (or, without one, described only: compressed again when read).
type compressedBlob struct {
	digest v1.Hash
	size   int64
	diffID v1.Hash // sha256 of what was compressed
	file   string  // "" when not kept
}

// compressTo compresses r with c into w (nil: discard), returning the digest
// and size of what was written and the sha256 of what was read.
func (c Compression) compressTo(w io.Writer, r io.Reader) (compressedBlob, error) {
	var out compressedBlob
	sum := sha256.New()
	cw := &countingWriter{w: sum}
	if w != nil {
		cw.w = io.MultiWriter(w, sum)
	}
	zw, err := c.newWriter(cw)
	if err != nil {
		return out, err
	}
	diff := sha256.New()
	if _, err := io.Copy(zw, io.TeeReader(r, diff)); err != nil {
		zw.Close()
		return out, err
	}
	if err := zw.Close(); err != nil {
		return out, err
	}
	out.digest, out.size, out.diffID = hashOf(sum), cw.n, hashOf(diff)
	return out, nil
}

// compressToFile compresses r into a new file of dir.
func (c Compression) compressToFile(dir string, r io.Reader) (compressedBlob, error) {
	f, err := os.CreateTemp(dir, "layer-*")
	if err != nil {
		return compressedBlob{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	out, err := c.compressTo(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return compressedBlob{}, err
	}
	out.file = f.Name()
	return out, nil
}

// copyToFile copies r (a blob that is compressed already) into a new file
// of dir, returning its digest and size.
func copyToFile(dir string, r io.Reader) (compressedBlob, error) {
	f, err := os.CreateTemp(dir, "blob-*")
	if err != nil {
		return compressedBlob{}, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return compressedBlob{}, err
	}
	return compressedBlob{digest: hashOf(sum), size: n, file: f.Name()}, nil
}

// hashBlob reads r through, returning its digest and size.
func hashBlob(r io.Reader) (compressedBlob, error) {
	sum := sha256.New()
	n, err := io.Copy(sum, r)
	return compressedBlob{digest: hashOf(sum), size: n}, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// sniffCompression says how the blob starting with head is compressed:
// "gzip", "zstd" or "" (not compressed).
func sniffCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return CompressionGzip
	case bytes.HasPrefix(head, zstdMagic):
		return CompressionZstd
	}
	return ""
}
