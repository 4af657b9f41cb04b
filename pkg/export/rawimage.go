package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/export/internal/registry"
)

// Images of the sources that may hold their layers uncompressed: a
// docker-archive (`docker save`, podman's and buildah's docker-archive:) and
// the Docker daemon's save stream.
//
// go-containerregistry's tarball image compresses such a layer with the
// standard library's gzip, one stream on one core, twice: once to learn the
// digest the manifest needs, again while pushing it; and its daemon image
// asks the daemon for the whole image again for every layer it reads
// (docs/benchmarks.md, "Compression"). Here each layer is compressed once,
// on every core (pgzip, or zstd with -compression zstd), into a file of a
// scratch directory that the export removes at the end; the push then sends
// that file (sendfile). Without a scratch directory (library use of Open
// without WithScratchDir), a layer is compressed to learn its digest and
// again whenever it is read: the same bytes, as the compressors are
// deterministic.

// rawLayer is one layer as a source holds it.
type rawLayer struct {
	open    func() (io.ReadCloser, error) // the blob as the source holds it
	held    Compression                   // how the source holds it: "" uncompressed, gzip or zstd (pushed as it is)
	diffID  v1.Hash                       // from the config: what it decompresses to
	what    string                        // names the layer in errors
	codec   Compression                   // compresses an uncompressed one
	scratch string                        // where the compressed layer is kept; "" not kept
	oci     bool                          // in an OCI manifest (else Docker's)
	key     string                        // the same for layers the source holds once (a link)
	slots   chan struct{}                 // bounds the layers compressed at once (the image's)

	once sync.Once
	err  error
	blob compressedBlob
}

// prepare learns the layer's digest and size, compressing it (into the
// scratch directory, when there is one) if the source holds it uncompressed,
// and checks that it is the layer the config names.
func (l *rawLayer) prepare() error {
	l.once.Do(func() {
		if l.slots != nil {
			l.slots <- struct{}{}
			defer func() { <-l.slots }()
		}
		rc, err := l.open()
		if err != nil {
			l.err = fmt.Errorf("%s: %w", l.what, err)
			return
		}
		defer rc.Close()
		var blob compressedBlob
		switch {
		case l.held != "":
			// Pushed as it is: only its digest is needed.
			blob, err = hashBlob(rc)
		case l.scratch != "":
			blob, err = l.codec.compressToFile(l.scratch, rc)
		default:
			blob, err = l.codec.compressTo(nil, rc)
		}
		if err != nil {
			l.err = fmt.Errorf("%s: %w", l.what, err)
			return
		}
		if l.held == "" && blob.diffID != l.diffID {
			os.Remove(blob.file)
			l.err = badinput.Errorf("%s: its content has digest %s, the image config says %s (corrupted archive?)", l.what, blob.diffID, l.diffID)
			return
		}
		l.blob = blob
	})
	return l.err
}

func (l *rawLayer) Digest() (v1.Hash, error) {
	if err := l.prepare(); err != nil {
		return v1.Hash{}, err
	}
	return l.blob.digest, nil
}

func (l *rawLayer) Size() (int64, error) {
	if err := l.prepare(); err != nil {
		return 0, err
	}
	return l.blob.size, nil
}

func (l *rawLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

func (l *rawLayer) MediaType() (types.MediaType, error) {
	if l.held != "" {
		return l.held.layerMediaType(l.oci), nil
	}
	return l.codec.layerMediaType(l.oci), nil
}

// Compressed is the layer as it is pushed: the file it was compressed into
// (an *os.File, which an upload hands to the kernel), the source's blob when
// the source holds it compressed, else compressed again as it is read.
func (l *rawLayer) Compressed() (io.ReadCloser, error) {
	if err := l.prepare(); err != nil {
		return nil, err
	}
	switch {
	case l.blob.file != "":
		return os.Open(l.blob.file)
	case l.held != "":
		return l.open()
	}
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := l.codec.compressTo(pw, rc)
		rc.Close()
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// rawImage is a partial.CompressedImageCore over a config and rawLayers:
// a Docker schema 2 manifest, or an OCI one when a layer is zstd.
type rawImage struct {
	config []byte
	layers []*rawLayer
	oci    bool

	once sync.Once
	raw  []byte
	err  error
}

// newRawImage returns the image; with codec zstd, or a layer the source
// holds as zstd, its manifest is OCI's. At most jobs layers (zero: one per
// core) are compressed at once; each is compressed on every core already
// (pgzip's blocks, zstd's goroutines).
func newRawImage(config []byte, layers []*rawLayer, codec Compression, jobs int) (v1.Image, error) {
	img := &rawImage{config: config, layers: layers, oci: codec == CompressionZstd}
	for _, l := range layers {
		if l.held == CompressionZstd {
			img.oci = true
		}
	}
	if jobs < 1 {
		jobs = max(1, runtime.GOMAXPROCS(0))
	}
	slots := make(chan struct{}, jobs)
	for _, l := range layers {
		l.oci, l.slots = img.oci, slots
	}
	v, err := partial.CompressedToImage(img)
	if err != nil {
		return nil, err
	}
	return &streamingImage{Image: v, raw: img}, nil
}

// layerStreamer is an image whose layers are compressed when first asked
// for: the push uploads each as soon as it is ready (streamBlobs) rather
// than wait for the manifest, which needs them all.
type layerStreamer interface {
	// streamBlobs lists the layers and the config to upload, each blob
	// once; a layer's digest and size are learnt (registry.Blob.Resolve) when it is
	// compressed.
	streamBlobs(from name.Repository) ([]registry.Blob, error)
	// manifestSizeBound is at least the size the manifest will have.
	manifestSizeBound() int
}

// streamingImage is a rawImage as a v1.Image and a layerStreamer.
type streamingImage struct {
	v1.Image
	raw *rawImage
}

func (s *streamingImage) streamBlobs(from name.Repository) ([]registry.Blob, error) {
	var out []registry.Blob
	seen := map[string]bool{}
	for _, l := range s.raw.layers {
		if l.key != "" && seen[l.key] {
			continue
		}
		seen[l.key] = true
		vl, err := partial.CompressedToLayer(l)
		if err != nil {
			return nil, err
		}
		out = append(out, registry.Blob{Layer: vl, From: from})
	}
	cl, err := partial.ConfigLayer(s.Image)
	if err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	d, err := cl.Digest()
	if err != nil {
		return nil, err
	}
	return append(out, registry.Blob{Layer: cl, Digest: d, Size: int64(len(s.raw.config)), From: from}), nil
}

// manifestSizeBound is the size of the manifest with every layer of the
// largest size a descriptor can say.
func (s *streamingImage) manifestSizeBound() int {
	mt, _ := s.raw.MediaType()
	m := v1.Manifest{SchemaVersion: 2, MediaType: mt, Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: math.MaxInt64, Digest: maxHash},
		Layers: make([]v1.Descriptor, len(s.raw.layers))}
	for i, l := range s.raw.layers {
		lmt, _ := l.MediaType()
		m.Layers[i] = v1.Descriptor{MediaType: lmt, Size: math.MaxInt64, Digest: maxHash}
	}
	b, _ := json.Marshal(m)
	return len(b)
}

var maxHash = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("f", 64)}

func (i *rawImage) RawConfigFile() ([]byte, error) { return i.config, nil }

func (i *rawImage) MediaType() (types.MediaType, error) {
	if i.oci {
		return types.OCIManifestSchema1, nil
	}
	return types.DockerManifestSchema2, nil
}

// RawManifest compresses every layer the first time (several at once, each
// on every core) and describes them.
func (i *rawImage) RawManifest() ([]byte, error) {
	i.once.Do(func() { i.raw, i.err = i.manifest() })
	return i.raw, i.err
}

func (i *rawImage) manifest() ([]byte, error) {
	var g errgroup.Group
	for _, l := range i.layers {
		g.Go(l.prepare)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(i.config))
	if err != nil {
		return nil, err
	}
	mt, _ := i.MediaType()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     mt,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: cfgSize, Digest: cfgHash},
		Layers:        make([]v1.Descriptor, len(i.layers)),
	}
	if i.oci {
		m.Config.MediaType = types.OCIConfigJSON
	}
	for n, l := range i.layers {
		lmt, _ := l.MediaType()
		m.Layers[n] = v1.Descriptor{MediaType: lmt, Size: l.blob.size, Digest: l.blob.digest}
	}
	return json.Marshal(m)
}

func (i *rawImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if _, err := i.RawManifest(); err != nil {
		return nil, err
	}
	for _, l := range i.layers {
		if l.blob.digest == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("the image has no layer %s", h)
}

// readCloser reads from Reader and closes with close.
type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
