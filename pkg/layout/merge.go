package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxIndexSize bounds the index.json read from an existing layout: 16 MiB
// holds about 60,000 descriptors.
const MaxIndexSize = 16 << 20

// ErrBadIndex is wrapped when the layout's existing index.json cannot be
// merged into (not an OCI image index, too large, not a regular file): it
// is left as it was and the caller's input is at fault.
var ErrBadIndex = errors.New("not an OCI image index")

// indexFile is an OCI image index as index.json holds it. Descriptors stay
// raw JSON, so that a merge keeps every one it does not replace byte for
// byte, fields go-containerregistry does not know included.
type indexFile struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Manifests     []json.RawMessage `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Merge returns the index.json to write into the OCI image layout at dir:
// the index the layout already holds (an empty OCI image index when it has
// none) without the descriptors that name one of idx's references,
// followed by idx's descriptors. Nothing else of it changes: its other
// descriptors (byte for byte, in order), its annotations, its blobs.
//
// A descriptor names one of idx's references (each descriptor of idx names
// the reference in its io.containerd.image.name annotation) when
//   - its io.containerd.image.name, or its org.opencontainers.image.ref.name
//     holding a full reference (a '/' or ':' in it), is that reference once
//     both are normalised ("docker.io/library/app" is "index.docker.io/library/app:latest"), or
//   - it has no io.containerd.image.name and its ref.name is a bare tag
//     equal to that reference's tag: oci:DIR:TAG would otherwise still find
//     it first.
//
// So "reg/a:latest" and then "reg/b:latest" into one layout list both.
// An index.json that is a symlink is not read (it does not lie inside the
// layout): it is replaced. One that is not an OCI image index, or larger
// than MaxIndexSize, is an error wrapping ErrBadIndex.
func Merge(dir string, idx v1.ImageIndex) ([]byte, error) {
	ours, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("-oci-layout %s: %w", dir, err)
	}
	cur, err := readIndex(dir)
	if err != nil {
		return nil, fmt.Errorf("-oci-layout %s: index.json: %w", dir, err)
	}
	names := newNameSet()
	for _, d := range ours.Manifests {
		names.add(d.Annotations[AnnotationImageName])
	}
	kept := cur.Manifests[:0]
	for _, raw := range cur.Manifests {
		var d v1.Descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("-oci-layout %s: index.json: descriptor %s: %w: %w", dir, raw, ErrBadIndex, err)
		}
		if !names.named(d.Annotations) {
			kept = append(kept, raw)
		}
	}
	cur.Manifests = kept
	for _, d := range ours.Manifests {
		raw, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("-oci-layout %s: %w", dir, err)
		}
		cur.Manifests = append(cur.Manifests, raw)
	}
	if cur.Manifests == nil {
		cur.Manifests = []json.RawMessage{}
	}
	return json.Marshal(cur)
}

// readIndex reads dir/index.json, or returns an empty OCI image index when
// there is none (or it is a symlink, whose target is not part of the
// layout).
func readIndex(dir string) (*indexFile, error) {
	empty := &indexFile{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	p := filepath.Join(dir, "index.json")
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode()&fs.ModeSymlink != 0) {
		return empty, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file (%s)", ErrBadIndex, fi.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ofi, err := f.Stat(); err != nil || !os.SameFile(fi, ofi) {
		return nil, fmt.Errorf("changed while it was read (%v)", err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxIndexSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxIndexSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadIndex, MaxIndexSize)
	}
	var idx indexFile
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", ErrBadIndex, err)
	}
	if idx.SchemaVersion == 0 {
		idx.SchemaVersion = 2
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion %d, want 2", ErrBadIndex, idx.SchemaVersion)
	}
	return &idx, nil
}

// nameSet holds the references a merge replaces: normalised full names,
// and the tags of those references.
type nameSet struct {
	full map[string]bool
	tags map[string]bool
}

func newNameSet() *nameSet { return &nameSet{full: map[string]bool{}, tags: map[string]bool{}} }

func (s *nameSet) add(ref string) {
	if ref == "" {
		return
	}
	s.full[normalised(ref)] = true
	if t := TagOf(ref); t != "" {
		s.tags[t] = true
	}
}

// named reports whether a descriptor with these annotations names one of
// the set's references (the rule Merge documents).
func (s *nameSet) named(a map[string]string) bool {
	image, hasImage := a[AnnotationImageName]
	if hasImage && s.full[normalised(image)] {
		return true
	}
	ref, hasRef := a[AnnotationRefName]
	if !hasRef {
		return false
	}
	if strings.ContainsAny(ref, "/:") {
		return s.full[normalised(ref)]
	}
	return !hasImage && s.tags[ref]
}

// normalised is a reference as go-containerregistry names it in full
// (registry, repository, and the tag as written, defaulting to latest), so
// that "docker.io/library/app" and "app:latest" compare equal. What does
// not parse stays as it is.
func normalised(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	if t := TagOf(ref); t != "" || !strings.Contains(ref, "@") {
		if t == "" {
			t = name.DefaultTag
		}
		return r.Context().Name() + ":" + t
	}
	return r.Name()
}

// Find returns the descriptor of the layout at dir that names ref (the
// rule Merge uses to replace one), and whether there is one.
func Find(dir, ref string) (v1.Descriptor, bool) {
	idx, err := readIndex(dir)
	if err != nil {
		return v1.Descriptor{}, false
	}
	names := newNameSet()
	names.add(ref)
	for _, raw := range idx.Manifests {
		var d v1.Descriptor
		if json.Unmarshal(raw, &d) != nil {
			continue
		}
		if names.named(d.Annotations) {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// Only returns the descriptor of the layout at dir when its index.json
// lists exactly one manifest (a layout the Buildpacks lifecycle writes per
// image), and whether it does.
func Only(dir string) (v1.Descriptor, bool) {
	idx, err := readIndex(dir)
	if err != nil || len(idx.Manifests) != 1 {
		return v1.Descriptor{}, false
	}
	var d v1.Descriptor
	if json.Unmarshal(idx.Manifests[0], &d) != nil || d.Digest == (v1.Hash{}) {
		return v1.Descriptor{}, false
	}
	return d, true
}
