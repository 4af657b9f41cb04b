package export

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

// checkOCILayoutDir accepts a missing directory (it will be created), an
// empty one, or an OCI image layout whose files stay inside it. dir itself
// may be a symlink, or lie under one: it is followed like any path. Inside,
// oci-layout, index.json, blobs/, blobs/<algorithm>/ and every blob must be
// real files and directories, not symlinks: go-containerregistry writes
// blobs with os.Create, which would follow a (dangling) symlink out of the
// layout, and an index.json that is a symlink would be read from elsewhere.
// index.json is read bounded and parsed strictly (digests that name files
// directly under blobs/), so that a layout the export could not append to
// is refused before anything is pushed.
func checkOCILayoutDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	if fi, err := os.Lstat(filepath.Join(dir, "oci-layout")); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			return fmt.Errorf("%s: oci-layout is not a regular file (%s)", dir, fileType(fi.Mode()))
		}
		return fmt.Errorf("%s: neither empty nor an OCI image layout (no oci-layout file)", dir)
	}
	indexPath := filepath.Join(dir, "index.json")
	raw, err := readMetadata(indexPath) // refuses a symlink
	if err != nil {
		return fmt.Errorf("%s: unreadable OCI image layout: %v", dir, err)
	}
	if _, err := parseIndex(indexPath, raw); err != nil {
		return err
	}
	if err := checkLayoutTree(dir, true); err != nil {
		return err
	}
	if _, err := layout.ImageIndexFromPath(dir); err != nil {
		return fmt.Errorf("%s: unreadable OCI image layout: %v", dir, err)
	}
	return nil
}

// writeOCILayout writes art (image or index, blobs streamed) into the OCI
// image layout at dir, creating it if needed, and lists it in index.json
// under every tag (annotations io.containerd.image.name = the tag's full
// name, org.opencontainers.image.ref.name = its tag part). index.json is
// merged into (layout.Merge): a descriptor is replaced only when it names
// one of the tags, so reg/a:latest and then reg/b:latest into one layout
// list both. index.json is replaced atomically (temp file, fsync, rename).
func writeOCILayout(dir string, art Artifact, tags []name.Tag) (*v1.Descriptor, error) {
	if err := checkOCILayoutDir(dir); err != nil {
		return nil, err
	}
	var lp layout.Path
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if lp, err = layout.Write(dir, empty.Index); err != nil {
			return nil, fmt.Errorf("create OCI layout %s: %w", dir, err)
		}
	} else if lp, err = layout.FromPath(dir); err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", dir, err)
	}

	switch a := art.(type) {
	case v1.Image:
		if err := lp.WriteImage(a); err != nil {
			return nil, fmt.Errorf("write image to OCI layout %s: %w", dir, err)
		}
	case v1.ImageIndex:
		if err := lp.WriteIndex(a); err != nil {
			return nil, fmt.Errorf("write index to OCI layout %s: %w", dir, err)
		}
	default:
		return nil, fmt.Errorf("cannot write %T to an OCI layout", art)
	}

	desc, err := partial.Descriptor(art)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = t.Name()
	}
	ours, err := ourlayout.Index(names, *desc)
	if err != nil {
		return nil, err
	}
	raw, err := ourlayout.Merge(dir, ours)
	if err != nil {
		return nil, err
	}
	if err := ourlayout.WriteDurable(dir, raw); err != nil {
		return nil, err
	}

	// Read it back: the layout must now name our digest under each tag.
	got, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		found, err := partial.FindManifests(got, func(d v1.Descriptor) bool { return d.Annotations[ourlayout.AnnotationImageName] == n })
		if err != nil {
			return nil, err
		}
		if len(found) != 1 || found[0].Digest != desc.Digest {
			return nil, fmt.Errorf("verify OCI layout %s: expected one %s descriptor with digest %s, found %v", dir, n, desc.Digest, found)
		}
	}
	return desc, nil
}
