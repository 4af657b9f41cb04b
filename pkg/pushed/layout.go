package pushed

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/layout"
)

// maxIndexSize bounds the index.json read (a layout's index lists
// descriptors: a few hundred bytes each).
const maxIndexSize = 4 << 20

// ReadLayout reads the OCI image layout at dir: one image per digest its
// index.json lists, named by its descriptors' io.containerd.image.name (a
// full reference) or org.opencontainers.image.ref.name (a full reference,
// or a tag of the repository o.Image names). A layout whose only image has
// no name is named by o.Image.
func ReadLayout(dir string, o Options) ([]Image, error) {
	idx, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	var imgs []Image
	at := map[string]int{}
	for i, desc := range idx.Manifests {
		d := desc.Digest.String()
		if _, err := checkDigest(OCILayout, dir, "index.json manifest digest", d); err != nil {
			return nil, err
		}
		ref, err := layoutName(dir, i, desc, o, len(idx.Manifests))
		if err != nil {
			return nil, err
		}
		j, ok := at[d]
		if !ok {
			j = len(imgs)
			at[d] = j
			imgs = append(imgs, Image{Digest: d, MediaType: string(desc.MediaType), Size: desc.Size, Verify: true})
		}
		if !contains(imgs[j].Refs, ref) {
			imgs[j].Refs = append(imgs[j].Refs, ref)
		}
	}
	if len(imgs) == 0 {
		return nil, inputErrorf(OCILayout, dir, "index.json lists no manifest")
	}
	return imgs, nil
}

func layoutName(dir string, i int, desc v1.Descriptor, o Options, n int) (string, error) {
	what := "index.json manifest " + desc.Digest.String()
	if full := desc.Annotations[layout.AnnotationImageName]; full != "" {
		return reference(OCILayout, dir, what+": "+layout.AnnotationImageName, full)
	}
	refName := desc.Annotations[layout.AnnotationRefName]
	switch {
	case refName != "" && isFullReference(refName):
		return reference(OCILayout, dir, what+": "+layout.AnnotationRefName, refName)
	case refName != "":
		if o.Image == "" {
			return "", inputErrorf(OCILayout, dir, "%s: %s %q is a tag only: give -image REPOSITORY", what, layout.AnnotationRefName, refName)
		}
		repo, _, err := parseRef(o.Image)
		if err != nil {
			return "", inputErrorf(OCILayout, dir, "-image %q: %v", o.Image, err)
		}
		return reference(OCILayout, dir, what+": "+layout.AnnotationRefName, repo.String()+":"+refName)
	case o.Image != "" && n == 1:
		return reference(OCILayout, dir, "-image", o.Image)
	default:
		return "", inputErrorf(OCILayout, dir, "%s has no name (%s or %s): give -image REF for a layout of one image", what, layout.AnnotationRefName, layout.AnnotationImageName)
	}
}

// isFullReference: a name with a registry or repository path (contains a
// slash), not a bare tag.
func isFullReference(s string) bool { return bytes.ContainsRune([]byte(s), '/') }

func readIndex(dir string) (*v1.IndexManifest, error) {
	p := filepath.Join(dir, "index.json")
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dir); derr != nil {
				return nil, inputErrorf(OCILayout, dir, "%v", derr)
			}
			return nil, inputErrorf(OCILayout, dir, "no index.json: not an OCI image layout")
		}
		return nil, inputErrorf(OCILayout, dir, "%v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, inputErrorf(OCILayout, dir, "index.json is not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > maxIndexSize {
		return nil, inputErrorf(OCILayout, dir, "index.json is %d bytes, over the %d-byte limit", fi.Size(), maxIndexSize)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, inputErrorf(OCILayout, dir, "%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, inputErrorf(OCILayout, dir, "%v", err)
	}
	return parseIndex(dir, data)
}

func parseIndex(dir string, data []byte) (*v1.IndexManifest, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, inputErrorf(OCILayout, dir, "index.json: %v", err)
	}
	return idx, nil
}
