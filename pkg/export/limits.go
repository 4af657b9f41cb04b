package export

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// MaxManifestBytes is the largest manifest or index export-step pushes to a
// registry: 4 MiB, Distribution's limit on a manifest PUT body and the size
// the OCI distribution spec asks registries to accept at least. A bigger
// one (an image of about 25,000 layers) is refused before any blob is
// uploaded, rather than after every blob by the registry.
const MaxManifestBytes = 4 << 20

// checkManifestSizes fails, naming the limit, when a manifest the export
// would PUT (the artifact's, and for an index every child's) is larger than
// MaxManifestBytes. what names the destination in the error.
func checkManifestSizes(a Artifact, what string) error {
	return checkManifestSize(a, what, 0)
}

func checkManifestSize(a Artifact, what string, depth int) error {
	if depth > maxIndexDepth {
		return badinput.Errorf("%s: indexes nested more than %d deep", what, maxIndexDepth)
	}
	if ls, ok := a.(layerStreamer); ok && ls.manifestSizeBound() <= MaxManifestBytes {
		return nil // known to fit without compressing every layer first
	}
	raw, err := a.RawManifest()
	if err != nil {
		return err
	}
	if len(raw) > MaxManifestBytes {
		layers := ""
		if img, ok := a.(v1.Image); ok {
			if m, err := img.Manifest(); err == nil {
				layers = fmt.Sprintf(" (%d layers)", len(m.Layers))
			}
		}
		h, _, _ := v1.SHA256(bytes.NewReader(raw))
		return badinput.Errorf("%s: manifest %s is %d bytes%s, more than the %d bytes (4 MiB) a registry accepts (Distribution's limit on a manifest PUT)",
			what, h, len(raw), layers, MaxManifestBytes)
	}
	idx, ok := a.(v1.ImageIndex)
	if !ok {
		return nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		var child Artifact
		switch {
		case d.MediaType.IsImage():
			child, err = idx.Image(d.Digest)
		case d.MediaType.IsIndex():
			child, err = idx.ImageIndex(d.Digest)
		default:
			continue
		}
		if err != nil {
			return err
		}
		if err := checkManifestSize(child, what, depth+1); err != nil {
			return err
		}
	}
	return nil
}
