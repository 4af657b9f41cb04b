package layout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/exportreport/exportreport/pkg/atomicfile"
	"github.com/exportreport/exportreport/pkg/report"
)

// maxMetadataBlob bounds one manifest or config fetched: Distribution
// refuses manifests over 4 MiB, and configs are far smaller.
const maxMetadataBlob = 16 << 20

// Blobs are blobs fetched from a registry, by digest, to be written under
// a layout's blobs/ directory.
type Blobs map[v1.Hash][]byte

// FetchManifests gets from the registry the manifest (or index) the report
// names, and for an index every manifest it lists, recursively, with the
// config of every image: all a reader of the layout needs to inspect the
// image (skopeo inspect oci:DIR:TAG), and no layer. Every blob's digest is
// checked. It uses the first tag's repository, with the options' keychain,
// transport and insecure hosts; WithOffline makes it fail with
// ErrNeedRegistry.
func FetchManifests(ctx context.Context, r *report.Report, opts ...Option) (Blobs, error) {
	o := newOptions(opts)
	if r.Image.Digest == "" || len(r.Image.Tags) == 0 {
		return nil, errors.New("no registry digest (a daemon export); an OCI layout needs one")
	}
	if o.offline {
		return nil, ErrNeedBlobs
	}
	digest, err := v1.NewHash(r.Image.Digest)
	if err != nil {
		return nil, fmt.Errorf("digest %q: %w", r.Image.Digest, err)
	}
	ref, err := digestReference(r.Image.Tags[0], digest, o.insecure)
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain)}
	if t := o.transportFor(ref.Context().RegistryStr()); t != nil {
		ropts = append(ropts, remote.WithTransport(t))
	}
	blobs := Blobs{}
	if err := fetchManifest(ref, blobs, ropts, 0); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", ref, err)
	}
	o.logger.Debug("fetched manifests and configs for the OCI layout", "ref", ref.String(), "blobs", len(blobs))
	return blobs, nil
}

// ErrNeedBlobs is wrapped when blobs are asked for and the registry may not
// be asked (WithOffline).
var ErrNeedBlobs = errors.New("fetching manifests and configs needs the registry and -offline forbids asking it")

// maxIndexDepth bounds indexes of indexes.
const maxIndexDepth = 4

func fetchManifest(ref name.Digest, blobs Blobs, ropts []remote.Option, depth int) error {
	want, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return err
	}
	if _, done := blobs[want]; done {
		return nil
	}
	desc, err := remote.Get(ref, ropts...) // checks the manifest's digest
	if err != nil {
		return err
	}
	if err := keep(blobs, want, desc.Manifest); err != nil {
		return err
	}
	switch {
	case desc.MediaType.IsIndex():
		if depth >= maxIndexDepth {
			return fmt.Errorf("%s: indexes nested deeper than %d", ref, maxIndexDepth)
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, child := range m.Manifests {
			if !child.MediaType.IsIndex() && !child.MediaType.IsImage() {
				continue // an artifact of another kind: not needed to inspect the image
			}
			if err := fetchManifest(ref.Context().Digest(child.Digest.String()), blobs, ropts, depth+1); err != nil {
				return err
			}
		}
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return err
		}
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		if m.Config.Size > maxMetadataBlob {
			return fmt.Errorf("%s: config of %d bytes, more than %d", ref, m.Config.Size, maxMetadataBlob)
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			return fmt.Errorf("config %s: %w", m.Config.Digest, err)
		}
		return keep(blobs, m.Config.Digest, cfg)
	default:
		return fmt.Errorf("%s: media type %q is neither an image nor an index", ref, desc.MediaType)
	}
	return nil
}

// keep adds b as blob d after checking that it is d.
func keep(blobs Blobs, d v1.Hash, b []byte) error {
	if len(b) > maxMetadataBlob {
		return fmt.Errorf("blob %s of %d bytes, more than %d", d, len(b), maxMetadataBlob)
	}
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if h != d {
		return fmt.Errorf("blob %s: the registry sent content whose digest is %s", d, h)
	}
	blobs[d] = b
	return nil
}

// CheckBlobsDir fails when dir's blobs/ or blobs/sha256/ is not a real
// directory (a symlink would make WriteBlobs write outside the layout), so
// that the caller can refuse before anything is written.
func CheckBlobsDir(dir string) error {
	for _, p := range []string{filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs", "sha256")} {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("-oci-layout %s: %w", dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("-oci-layout %s: %s is not a directory (%s); an OCI layout's blobs must stay inside it", dir, p, fi.Mode().Type())
		}
	}
	return nil
}

// WriteBlobs writes blobs into dir/blobs/<algorithm>/<hex>, each through a
// temp file renamed into place (fsynced with durable). A blob already there
// with the same bytes is left alone.
func WriteBlobs(dir string, blobs Blobs, durable bool) error {
	if err := CheckBlobsDir(dir); err != nil {
		return err
	}
	writeFile := atomicfile.ReplaceFile
	if durable {
		writeFile = atomicfile.WriteFile
	}
	for d, b := range blobs {
		sub := filepath.Join(dir, "blobs", d.Algorithm)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("-oci-layout %s: %w", dir, err)
		}
		p := filepath.Join(sub, d.Hex)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(b)) {
			if have, err := os.ReadFile(p); err == nil && string(have) == string(b) {
				continue
			}
		}
		if err := writeFile(p, b, 0o644); err != nil {
			return fmt.Errorf("-oci-layout %s: %w", dir, err)
		}
	}
	return nil
}
