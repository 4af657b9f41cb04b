package export

import (
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// Images of an OCI layout source, with their manifest parsed once.
//
// go-containerregistry's layout image parses its manifest again for every
// layer it looks up (layoutImage.LayerByDigest calls Manifest), and
// Layers() looks up every layer: an image of n layers costs n parses of an
// O(n) manifest, each time it is pushed or written. For 10,000 layers (a
// 1.6 MB manifest) that was minutes per pass; here it is one parse.

// cachedLayoutImage is a partial.CompressedImageCore over an image in the
// layout at path.
type cachedLayoutImage struct {
	path     layout.Path
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.Manifest
	blobs    map[v1.Hash]v1.Descriptor // config and layers
}

// newLayoutImage reads the manifest d names in the layout at path (the
// caller has checked its size) and returns the image.
func newLayoutImage(path layout.Path, d v1.Descriptor) (v1.Image, error) {
	raw, err := path.Bytes(d.Digest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, badinput.Errorf("manifest %s: %w", d.Digest, err)
	}
	c := &cachedLayoutImage{path: path, desc: d, raw: raw, manifest: m, blobs: make(map[v1.Hash]v1.Descriptor, len(m.Layers)+1)}
	c.blobs[m.Config.Digest] = m.Config
	for _, l := range m.Layers {
		c.blobs[l.Digest] = l
	}
	return partial.CompressedToImage(c)
}

func (c *cachedLayoutImage) RawManifest() ([]byte, error) { return c.raw, nil }

func (c *cachedLayoutImage) MediaType() (types.MediaType, error) {
	if c.manifest.MediaType != "" {
		return c.manifest.MediaType, nil
	}
	return c.desc.MediaType, nil
}

// Descriptor keeps what index.json says of the image (platform,
// annotations), as go-containerregistry's layout image does.
func (c *cachedLayoutImage) Descriptor() (*v1.Descriptor, error) {
	d := c.desc
	return &d, nil
}

func (c *cachedLayoutImage) RawConfigFile() ([]byte, error) {
	return c.path.Bytes(c.manifest.Config.Digest)
}

func (c *cachedLayoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := c.blobs[h]
	if !ok {
		return nil, fmt.Errorf("manifest %s has no layer %s", c.desc.Digest, h)
	}
	return &layoutBlob{path: c.path, desc: d}, nil
}

// layoutBlob is a blob of the layout, read when it is streamed.
type layoutBlob struct {
	path layout.Path
	desc v1.Descriptor
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *layoutBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *layoutBlob) Compressed() (io.ReadCloser, error)  { return b.path.Blob(b.desc.Digest) }
func (b *layoutBlob) Descriptor() (*v1.Descriptor, error) {
	d := b.desc
	return &d, nil
}

// cachedLayoutIndex is an index of the layout whose images (and nested
// indexes' images) are cachedLayoutImages.
type cachedLayoutIndex struct {
	index
	path layout.Path
}

// index lets cachedLayoutIndex embed a v1.ImageIndex and override its
// ImageIndex method.
type index = v1.ImageIndex

func (i cachedLayoutIndex) find(h v1.Hash) (v1.Descriptor, error) {
	im, err := i.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index has no manifest %s", h)
}

func (i cachedLayoutIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := i.find(h)
	if err != nil {
		return nil, err
	}
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("manifest %s has media type %s, not an image", h, d.MediaType)
	}
	return newLayoutImage(i.path, d)
}

func (i cachedLayoutIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := i.index.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return cachedLayoutIndex{index: idx, path: i.path}, nil
}

// Blob reads a blob of the layout, as go-containerregistry's layout index does.
func (i cachedLayoutIndex) Blob(h v1.Hash) (io.ReadCloser, error) { return i.path.Blob(h) }
