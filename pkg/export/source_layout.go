package export

// Opening an OCI image layout (oci:DIR[:TAG|@DIGEST]), and the checks
// that keep a hostile one from reaching outside it or into memory.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

func openLayout(src Source, log *slog.Logger) (Artifact, error) {
	dir := src.Path
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badinput.Errorf("%s does not exist", dir)
	}
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	if !fi.IsDir() {
		return nil, badinput.Errorf("%s is not a directory (an OCI image layout is one)", dir)
	}
	if err := checkOCILayoutFile(dir, log); err != nil {
		return nil, err
	}
	if err := checkLayoutTree(dir, false); err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	indexPath := filepath.Join(dir, "index.json")
	raw, err := readMetadata(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badinput.Errorf("%s does not exist: %s is not an OCI image layout", indexPath, dir)
	}
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	im, err := parseIndex(indexPath, raw)
	if err != nil {
		return nil, err
	}
	lp := layout.Path(dir)
	root, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	var idx v1.ImageIndex = cachedLayoutIndex{index: root, path: lp}
	check := layoutBlobCheck(lp)

	var desc *v1.Descriptor
	switch {
	case src.Ref != "" && isDigest(src.Ref):
		for i := range im.Manifests {
			if im.Manifests[i].Digest.String() == src.Ref {
				desc = &im.Manifests[i]
				break
			}
		}
		if desc == nil {
			return nil, badinput.Errorf("%s holds no manifest %s (it holds %s)", indexPath, src.Ref, describeManifests(im.Manifests))
		}
	case src.Ref != "":
		desc, err = findByRefName(indexPath, im.Manifests, src.Ref)
		if err != nil {
			return nil, err
		}
	default:
		switch distinct := distinctDigests(im.Manifests); distinct {
		case 0:
			return nil, badinput.Errorf("%s holds no manifests", indexPath)
		case 1:
			desc = &im.Manifests[0]
		default:
			// The whole layout is exported as an index.
			if err := validateIndex(idx, check, 0); err != nil {
				return nil, fmt.Errorf("%s: %w", indexPath, err)
			}
			return idx, nil
		}
	}
	if err := check(*desc, maxMetadataBytes); err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", indexPath, desc.Digest, err)
	}
	a, err := childArtifact(idx, *desc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	if err := validateArtifact(a, *desc, check, 0); err != nil {
		return nil, err
	}
	return a, nil
}

func checkOCILayoutFile(dir string, log *slog.Logger) error {
	p := filepath.Join(dir, "oci-layout")
	raw, err := readMetadata(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Some tools write index.json alone; accept that, but say nothing
		// when the directory is no layout at all: the error says it.
		if _, err := os.Lstat(filepath.Join(dir, "index.json")); err != nil {
			return badinput.Errorf("%s is not an OCI image layout: it has neither oci-layout nor index.json", dir)
		}
		log.Warn("OCI image layout has no oci-layout file; reading index.json anyway", "dir", dir)
		return nil
	}
	if err != nil {
		return badinput.Errorf("%w", err)
	}
	var l struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return badinput.Errorf("%s", jsonError(p, raw, err))
	}
	if l.ImageLayoutVersion == "" {
		return badinput.Errorf("%s: no imageLayoutVersion", p)
	}
	return nil
}

// readMetadata reads a small JSON file, refusing anything but a regular file
// and anything larger than maxMetadataBytes.
func readMetadata(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > maxMetadataBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", p, fi.Size(), maxMetadataBytes)
	}
	return os.ReadFile(p)
}

func parseIndex(p string, raw []byte) (*v1.IndexManifest, error) {
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, badinput.Errorf("%s", jsonError(p, raw, err))
	}
	if im.SchemaVersion != 2 {
		return nil, badinput.Errorf("%s: schemaVersion %d, want 2", p, im.SchemaVersion)
	}
	if im.MediaType != "" && !im.MediaType.IsIndex() {
		return nil, badinput.Errorf("%s: mediaType %s is not an image index", p, im.MediaType)
	}
	for i, d := range im.Manifests {
		if err := checkBlobDigest(d.Digest); err != nil {
			return nil, badinput.Errorf("%s: manifests[%d]: %w", p, i, err)
		}
	}
	return &im, nil
}

// checkBlobDigest makes sure a digest names a file directly under
// blobs/<algorithm>/ (v1.Hash parsing already enforces hex of the right
// length; this is the guard that matters, so it does not rely on that).
func checkBlobDigest(h v1.Hash) error {
	switch h.Algorithm {
	case "sha256", "sha512":
	default:
		return fmt.Errorf("digest %s: unsupported algorithm", h)
	}
	if h.Hex == "" || strings.Trim(h.Hex, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %s: not lower-case hex", h)
	}
	return nil
}

// jsonError names the file, line and column of a JSON syntax error.
func jsonError(p string, raw []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 1 || off > int64(len(raw)) {
		return fmt.Sprintf("%s: invalid JSON: %v", p, err)
	}
	before := raw[:off-1] // Offset is just past the offending byte,
	if se != nil && off == int64(len(raw)) && strings.Contains(se.Error(), "unexpected end") {
		before = raw // or the end of the input, when that is the problem
	}
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("%s:%d:%d: invalid JSON: %v", p, line, col, err)
}

func distinctDigests(ds []v1.Descriptor) int {
	seen := map[v1.Hash]bool{}
	for _, d := range ds {
		seen[d.Digest] = true
	}
	return len(seen)
}

func describeManifests(ds []v1.Descriptor) string {
	if len(ds) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range ds {
		s := d.Digest.String()
		if n := d.Annotations[ourlayout.AnnotationRefName]; n != "" {
			s = n + "=" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// findByRefName finds the descriptor whose ref.name annotation is tag, or,
// failing that, whose ref.name is a full reference with that tag.
func findByRefName(indexPath string, ds []v1.Descriptor, tag string) (*v1.Descriptor, error) {
	var exact, loose []int
	for i, d := range ds {
		n := d.Annotations[ourlayout.AnnotationRefName]
		if n == "" {
			continue
		}
		if n == tag {
			exact = append(exact, i)
			continue
		}
		if r, err := name.NewTag(n); err == nil && strings.Contains(n, ":") && r.TagStr() == tag {
			loose = append(loose, i)
		}
	}
	matches := exact
	if len(matches) == 0 {
		matches = loose
	}
	var names []string
	for _, d := range ds {
		if n := d.Annotations[ourlayout.AnnotationRefName]; n != "" {
			names = append(names, n)
		}
	}
	if len(matches) == 0 {
		if len(names) == 0 {
			return nil, badinput.Errorf("%s: no manifest is tagged %q (none has an %s annotation)", indexPath, tag, ourlayout.AnnotationRefName)
		}
		return nil, badinput.Errorf("%s: no manifest is tagged %q (tags: %s)", indexPath, tag, strings.Join(names, ", "))
	}
	first := ds[matches[0]]
	for _, i := range matches[1:] {
		if ds[i].Digest != first.Digest {
			return nil, badinput.Errorf("%s: tag %q names several manifests (%s, %s)", indexPath, tag, first.Digest, ds[i].Digest)
		}
	}
	return &first, nil
}

// childArtifact returns the image or index a descriptor of idx points to.
func childArtifact(idx v1.ImageIndex, d v1.Descriptor) (Artifact, error) {
	switch {
	case d.MediaType.IsImage():
		return idx.Image(d.Digest)
	case d.MediaType.IsIndex():
		return idx.ImageIndex(d.Digest)
	case d.MediaType.IsSchema1():
		return nil, badinput.Errorf("manifest %s is Docker schema 1, which is not supported", d.Digest)
	}
	return nil, badinput.Errorf("manifest %s has media type %q, not an image or an index", d.Digest, d.MediaType)
}

// blobCheck checks that a blob a manifest refers to is present and, when
// maxSize > 0, at most maxSize bytes (nil: trust the source, e.g. a
// registry).
type blobCheck func(d v1.Descriptor, maxSize int64) error

// layoutBlobCheck checks blobs of the layout at lp: the digest names a file
// directly under blobs/<algorithm>/, which is a regular file (not a
// symlink, which could lead anywhere) of the descriptor's size. The blobs
// directories themselves are checked by checkLayoutTree.
func layoutBlobCheck(lp layout.Path) blobCheck {
	return func(d v1.Descriptor, maxSize int64) error {
		if err := checkBlobDigest(d.Digest); err != nil {
			return badinput.Errorf("%w", err)
		}
		p := filepath.Join(string(lp), "blobs", d.Digest.Algorithm, d.Digest.Hex)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return badinput.Errorf("blob %s is missing: %s does not exist", d.Digest, p)
		}
		if err != nil {
			return badinput.Errorf("blob %s: %w", d.Digest, err)
		}
		if !fi.Mode().IsRegular() {
			return badinput.Errorf("blob %s: %s is not a regular file (%s)", d.Digest, p, fileType(fi.Mode()))
		}
		if d.Size > 0 && fi.Size() != d.Size {
			return badinput.Errorf("blob %s: %s is %d bytes, its descriptor says %d", d.Digest, p, fi.Size(), d.Size)
		}
		if maxSize > 0 && fi.Size() > maxSize {
			return badinput.Errorf("blob %s: %s is %d bytes, more than the %d allowed for a manifest or config", d.Digest, p, fi.Size(), maxSize)
		}
		return nil
	}
}

// checkLayoutTree makes sure that what an OCI layout at dir holds stays in
// dir: blobs/ and blobs/<algorithm>/ are real directories, not symlinks
// (the layout directory itself may be one: it is followed like any path).
// With blobFiles, every entry of blobs/<algorithm>/ must also be a regular
// file: a destination layout is written through go-containerregistry, which
// would create a blob through a dangling symlink.
func checkLayoutTree(dir string, blobFiles bool) error {
	blobs := filepath.Join(dir, "blobs")
	fi, err := os.Lstat(blobs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s); an OCI layout's blobs must stay inside it", blobs, fileType(fi.Mode()))
	}
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return err
	}
	for _, a := range algs {
		p := filepath.Join(blobs, a.Name())
		if !a.IsDir() {
			return fmt.Errorf("%s is not a directory (%s); an OCI layout's blobs must stay inside it", p, fileType(a.Type()))
		}
		if !blobFiles {
			continue
		}
		files, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, f := range files {
			if !f.Type().IsRegular() {
				return fmt.Errorf("%s is not a regular file (%s); an OCI layout's blobs must stay inside it", filepath.Join(p, f.Name()), fileType(f.Type()))
			}
		}
	}
	return nil
}

// maxIndexDepth bounds nested indexes.
const maxIndexDepth = 8

// validateArtifact checks what is cheap: the manifest matches its
// descriptor and parses, the config is readable, blobs are present.
func validateArtifact(a Artifact, d v1.Descriptor, check blobCheck, depth int) error {
	if check != nil {
		// Before go-containerregistry reads it whole.
		if err := check(d, maxMetadataBytes); err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
	}
	raw, err := a.RawManifest()
	if err != nil {
		return badinput.Errorf("manifest %s: %w", d.Digest, err)
	}
	if d.Digest != (v1.Hash{}) {
		h, n, err := v1.SHA256(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		if d.Digest.Algorithm == "sha256" && h != d.Digest {
			return badinput.Errorf("manifest %s: content has digest %s (corrupted blob)", d.Digest, h)
		}
		if d.Size > 0 && n != d.Size {
			return badinput.Errorf("manifest %s: %d bytes, its descriptor says %d", d.Digest, n, d.Size)
		}
	}
	switch a := a.(type) {
	case v1.Image:
		return validateImage(a, d, check)
	case v1.ImageIndex:
		return validateIndex(a, check, depth+1)
	}
	return badinput.Errorf("manifest %s is neither an image nor an index", d.Digest)
}

func validateImage(img v1.Image, d v1.Descriptor, check blobCheck) error {
	m, err := img.Manifest()
	if err != nil {
		return badinput.Errorf("manifest %s: %w", d.Digest, err)
	}
	if check != nil {
		if err := check(m.Config, maxMetadataBytes); err != nil {
			return fmt.Errorf("manifest %s: config: %w", d.Digest, err)
		}
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return badinput.Errorf("manifest %s: config %s: %w", d.Digest, m.Config.Digest, err)
	}
	if m.Config.Digest.Algorithm == "sha256" {
		if h, _, _ := v1.SHA256(bytes.NewReader(rawCfg)); h != m.Config.Digest {
			return badinput.Errorf("manifest %s: config %s: content has digest %s (corrupted blob)", d.Digest, m.Config.Digest, h)
		}
	}
	if _, err := v1.ParseConfigFile(bytes.NewReader(rawCfg)); err != nil {
		return badinput.Errorf("manifest %s: config %s is not an image config: %w", d.Digest, m.Config.Digest, err)
	}
	if check != nil {
		for i, l := range m.Layers {
			if !l.MediaType.IsDistributable() || len(l.URLs) > 0 {
				continue // foreign layers live elsewhere
			}
			if err := check(l, 0); err != nil {
				return fmt.Errorf("manifest %s: layer %d: %w", d.Digest, i, err)
			}
		}
	}
	return nil
}

func validateIndex(idx v1.ImageIndex, check blobCheck, depth int) error {
	if depth > maxIndexDepth {
		return badinput.Errorf("indexes nested more than %d deep", maxIndexDepth)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return badinput.Errorf("index: %w", err)
	}
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			if check != nil {
				if err := check(d, 0); err != nil {
					return err
				}
			}
			continue // an artifact: copied as it is
		}
		if check != nil {
			// A nested index is read whole as soon as it is opened.
			if err := check(d, maxMetadataBytes); err != nil {
				return fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
		}
		child, err := childArtifact(idx, d)
		if err != nil {
			return err
		}
		if err := validateArtifact(child, d, check, depth); err != nil {
			return err
		}
	}
	return nil
}
