package export

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

// knownTransports is listed in error messages, in this order.
const knownTransports = "oci:, docker-archive:, docker-daemon:, docker://"

// maxMetadataBytes bounds the JSON documents read into memory (index.json,
// oci-layout, a docker-archive manifest.json).
const maxMetadataBytes = 16 << 20

// transportScheme matches what looks like "name:" at the start of a -source
// value that is not a known transport.
var transportScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)

// String formats s the way ParseSource reads it back.
func (s Source) String() string {
	switch s.Transport {
	case TransportOCI:
		switch {
		case s.Ref == "":
			return "oci:" + s.Path
		case isDigest(s.Ref):
			return "oci:" + s.Path + "@" + s.Ref
		default:
			return "oci:" + s.Path + ":" + s.Ref
		}
	case TransportDockerArchive:
		if s.Ref == "" {
			return "docker-archive:" + s.Path
		}
		return "docker-archive:" + s.Path + ":" + s.Ref
	case TransportDaemon:
		return "docker-daemon:" + s.Ref
	case TransportRemote:
		return "docker://" + s.Ref
	}
	return string(s.Transport) + ":" + s.Path + s.Ref
}

func isDigest(s string) bool {
	_, err := v1.NewHash(s)
	return err == nil
}

// ParseSource parses a -source value:
//
//	oci:DIR[:TAG|@DIGEST]       an OCI image layout; TAG matches org.opencontainers.image.ref.name
//	docker-archive:FILE[:REF]   a `docker save` tarball; REF picks one image when it holds several
//	docker-daemon:REF           an image in the Docker daemon
//	docker://REF                an image or index in a registry
//	PATH                        a directory holding oci-layout (oci) or a regular file (docker-archive)
//
// DIR and FILE may contain ':'; when the value is ambiguous, the split whose
// path exists wins, else the first ':' separates path and reference (as
// skopeo does). For oci, Source.Ref holds the tag, or the digest without '@'.
// Errors wrap badinput.Err.
func ParseSource(s string) (Source, error) {
	if s == "" {
		return Source{}, badinput.Errorf("-source is empty (want %s or a path)", knownTransports)
	}
	switch {
	case strings.HasPrefix(s, "docker://"):
		ref := strings.TrimPrefix(s, "docker://")
		if err := checkReference(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
		return Source{Transport: TransportRemote, Ref: ref}, nil
	case strings.HasPrefix(s, "docker-daemon:"):
		ref := strings.TrimPrefix(s, "docker-daemon:")
		if err := checkReference(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
		return Source{Transport: TransportDaemon, Ref: ref}, nil
	case strings.HasPrefix(s, "oci:"):
		return parseOCISource(s, strings.TrimPrefix(s, "oci:"))
	case strings.HasPrefix(s, "docker-archive:"):
		return parseArchiveSource(s, strings.TrimPrefix(s, "docker-archive:"))
	}
	return detectSource(s)
}

func checkReference(ref string) error {
	if ref == "" {
		return errors.New("missing image reference")
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return nil
}

// checkOCITag accepts what an org.opencontainers.image.ref.name may hold:
// anything printable without white space.
func checkOCITag(tag string) error {
	if tag == "" {
		return errors.New("empty tag after ':'")
	}
	for _, r := range tag {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("tag %q contains white space or a control character", tag)
		}
	}
	return nil
}

func parseOCISource(s, rest string) (Source, error) {
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		if h, err := v1.NewHash(rest[i+1:]); err == nil {
			if rest[:i] == "" {
				return Source{}, badinput.Errorf("-source %q: missing layout directory before '@'", s)
			}
			return Source{Transport: TransportOCI, Path: rest[:i], Ref: h.String()}, nil
		}
	}
	p, ref, split := splitPathRef(rest, isDir)
	if p == "" {
		return Source{}, badinput.Errorf("-source %q: missing layout directory (want oci:DIR[:TAG|@DIGEST])", s)
	}
	if split {
		if err := checkOCITag(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
	}
	return Source{Transport: TransportOCI, Path: p, Ref: ref}, nil
}

func parseArchiveSource(s, rest string) (Source, error) {
	p, ref, split := splitPathRef(rest, isFile)
	if split && !pathExists(p) {
		// Nothing on disk settles it: the first ':' splits, as skopeo does,
		// unless what follows is not a reference, then it is all a path.
		if _, err := name.NewTag(ref); err != nil {
			p, ref, split = rest, "", false
		}
	}
	if p == "" {
		return Source{}, badinput.Errorf("-source %q: missing file (want docker-archive:FILE[:REF])", s)
	}
	if split {
		if ref == "" {
			return Source{}, badinput.Errorf("-source %q: empty reference after ':'", s)
		}
		if _, err := name.NewTag(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: invalid image reference %q (want a tag): %w", s, ref, err)
		}
	}
	return Source{Transport: TransportDockerArchive, Path: p, Ref: ref}, nil
}

// splitPathRef splits "PATH[:REF]". The whole value wins if it exists, then
// the shortest prefix before a ':' that is usable; else the first ':'.
func splitPathRef(rest string, usable func(string) bool) (p, ref string, split bool) {
	if !strings.Contains(rest, ":") || pathExists(rest) {
		return rest, "", false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] == ':' && i > 0 && usable(rest[:i]) {
			return rest[:i], rest[i+1:], true
		}
	}
	i := strings.Index(rest, ":")
	return rest[:i], rest[i+1:], true
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// detectSource handles a value without a known transport prefix.
func detectSource(s string) (Source, error) {
	fi, err := os.Stat(s)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if m := transportScheme.FindStringSubmatch(s); m != nil {
			if m[1] == "docker" {
				return Source{}, badinput.Errorf("-source %q: the docker transport is written docker://REF", s)
			}
			return Source{}, badinput.Errorf("-source %q: unknown transport %q (want %s)", s, m[1], knownTransports)
		}
		return Source{}, badinput.Errorf("-source %q: %s does not exist", s, s)
	case err != nil:
		return Source{}, badinput.Errorf("-source %q: %w", s, err)
	case fi.IsDir():
		if _, err := os.Stat(filepath.Join(s, "oci-layout")); err != nil {
			return Source{}, badinput.Errorf("-source %q: directory %s is not an OCI image layout (no oci-layout file)", s, s)
		}
		return Source{Transport: TransportOCI, Path: s}, nil
	case fi.Mode().IsRegular():
		return Source{Transport: TransportDockerArchive, Path: s}, nil
	}
	return Source{}, badinput.Errorf("-source %q: %s is neither a directory nor a regular file (%s)", s, s, fi.Mode().Type())
}

// SourceOption configures Open.
type SourceOption func(*sourceOptions)

type sourceOptions struct {
	remote       []remote.Option
	name         []name.Option
	daemon       []daemon.Option
	docker       *client.Client
	compression  Compression
	compressJobs int
	scratch      string
	log          *slog.Logger
}

// WithCompression compresses the layers a docker-archive or the Docker
// daemon holds uncompressed with c (default gzip).
func WithCompression(c Compression) SourceOption {
	return func(o *sourceOptions) { o.compression = c }
}

// WithCompressJobs bounds how many of an image's layers held uncompressed
// are compressed at once (n < 1: one per core, the default); each is
// compressed on every core already.
func WithCompressJobs(n int) SourceOption {
	return func(o *sourceOptions) { o.compressJobs = n }
}

// WithScratchDir keeps the layers a source holds uncompressed, once
// compressed, in files of dir, so that each is compressed once; the caller
// removes dir when done with the artifact. Without it, such a layer is
// compressed again whenever it is read, and a docker-daemon: source is
// read through go-containerregistry's daemon package.
func WithScratchDir(dir string) SourceOption {
	return func(o *sourceOptions) { o.scratch = dir }
}

// WithLogger sends Open's warnings (an OCI layout without its oci-layout
// file, ...) to log; without it they are discarded.
func WithLogger(log *slog.Logger) SourceOption {
	return func(o *sourceOptions) { o.log = log }
}

// WithDockerClient reads docker-daemon: sources with c: with a scratch
// directory, the image is saved from the daemon once, its layers compressed
// as they stream in.
func WithDockerClient(c *client.Client) SourceOption {
	return func(o *sourceOptions) { o.docker = c }
}

// WithRemoteOptions passes options (auth, transport, ...) to remote.Get for
// docker:// sources.
func WithRemoteOptions(opts ...remote.Option) SourceOption {
	return func(o *sourceOptions) { o.remote = append(o.remote, opts...) }
}

// WithNameOptions passes options (e.g. name.Insecure) to the parsing of
// docker:// and docker-daemon: references.
func WithNameOptions(opts ...name.Option) SourceOption {
	return func(o *sourceOptions) { o.name = append(o.name, opts...) }
}

// WithDaemonOptions passes options (e.g. daemon.WithClient) to daemon.Image
// for docker-daemon: sources. They come after the defaults
// (daemon.WithContext, daemon.WithUnbufferedOpener) and so override them.
func WithDaemonOptions(opts ...daemon.Option) SourceOption {
	return func(o *sourceOptions) { o.daemon = append(o.daemon, opts...) }
}

// Open resolves src to a v1.Image or a v1.ImageIndex. Layers are not read:
// destinations stream them when they write. What is cheap is checked here
// (the manifest or index parses, the config is readable, layout blobs exist),
// so that a source that is not an image fails with badinput.Err before
// anything is written anywhere.
//
// An OCI layout whose index.json holds one manifest (or one selected by tag
// or digest) yields that image or index; with several and no selector the
// layout's index.json itself is the artifact.
func Open(ctx context.Context, src Source, opts ...SourceOption) (Artifact, error) {
	o := sourceOptions{compression: CompressionGzip}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	var (
		a   Artifact
		err error
	)
	switch src.Transport {
	case TransportOCI:
		a, err = openLayout(src, o.log)
	case TransportDockerArchive:
		a, err = openArchive(src, o)
	case TransportDaemon:
		if o.docker != nil && o.scratch != "" {
			a, err = openDaemonSaved(ctx, src, o)
		} else {
			a, err = openDaemon(ctx, src, o)
		}
	case TransportRemote:
		a, err = openRemote(ctx, src, o)
	default:
		err = badinput.Errorf("unknown transport %q (want %s)", src.Transport, knownTransports)
	}
	if err != nil {
		return nil, fmt.Errorf("-source %s: %w", src, err)
	}
	return a, nil
}

// ---- OCI image layout ----

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

// ---- docker-archive ----

func openArchive(src Source, o sourceOptions) (Artifact, error) {
	p := src.Path
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badinput.Errorf("%s does not exist", p)
	}
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, badinput.Errorf("%s is not a regular file (a docker-archive is a tarball)", p)
	}
	manifest, entries, err := scanArchive(p)
	if err != nil {
		return nil, err
	}
	var tag *name.Tag
	if src.Ref != "" {
		t, err := name.NewTag(src.Ref)
		if err != nil {
			return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
		}
		tag = &t
		if !archiveHasTag(manifest, t) {
			return nil, badinput.Errorf("%s holds no image tagged %s (tags: %s)", p, src.Ref, archiveTags(manifest))
		}
	} else if len(manifest) != 1 {
		return nil, badinput.Errorf("%s holds %d images; pick one with docker-archive:%s:REF (tags: %s)", p, len(manifest), p, archiveTags(manifest))
	}
	d := archiveImage(manifest, tag)
	if len(d.LayerSources) > 0 {
		// Foreign layers (Windows base images): go-containerregistry's
		// tarball image knows their descriptors.
		img, err := tarball.ImageFromPath(p, tag)
		if err != nil {
			return nil, badinput.Errorf("%s: %w", p, err)
		}
		if _, err := img.ConfigFile(); err != nil {
			return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
		}
		return img, nil
	}
	return archiveRawImage(p, d, entries, o)
}

// archiveImage is the manifest.json entry of the image tagged t (the only
// one when t is nil).
func archiveImage(m tarball.Manifest, t *name.Tag) tarball.Descriptor {
	if t == nil {
		return m[0]
	}
	for _, d := range m {
		for _, s := range d.RepoTags {
			if rt, err := name.NewTag(s); err == nil && rt.Name() == t.Name() {
				return d
			}
		}
	}
	return tarball.Descriptor{}
}

// archiveRawImage is the image d of the docker-archive at p: its layers are
// read from where they sit in the file, each compressed once if the archive
// holds it uncompressed (rawimage.go).
func archiveRawImage(p string, d tarball.Descriptor, entries archiveEntries, o sourceOptions) (Artifact, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	defer f.Close()
	section := func(name string) (archiveEntry, *io.SectionReader, error) {
		e, err := entries.resolve(name)
		if err != nil {
			return e, nil, badinput.Errorf("%s: %w", p, err)
		}
		return e, io.NewSectionReader(f, e.offset, e.size), nil
	}
	ce, cr, err := section(d.Config)
	if err != nil {
		return nil, err
	}
	if ce.size > maxMetadataBytes {
		return nil, badinput.Errorf("%s: image config %s is %d bytes, more than the %d allowed", p, d.Config, ce.size, maxMetadataBytes)
	}
	rawCfg, err := io.ReadAll(cr)
	if err != nil {
		return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, badinput.Errorf("%s: image config %s lists %d layers, manifest.json %d", p, d.Config, len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	layers := make([]*rawLayer, len(d.Layers))
	for i, lp := range d.Layers {
		e, sr, err := section(lp)
		if err != nil {
			return nil, err
		}
		var head [4]byte
		n, _ := sr.ReadAt(head[:], 0)
		layers[i] = &rawLayer{
			open: func() (io.ReadCloser, error) {
				f, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				return &readCloser{Reader: io.NewSectionReader(f, e.offset, e.size), close: f.Close}, nil
			},
			held:    sniffCompression(head[:n]),
			key:     strconv.FormatInt(e.offset, 10),
			diffID:  cfg.RootFS.DiffIDs[i],
			what:    fmt.Sprintf("%s: layer %d (%s)", p, i+1, lp),
			codec:   o.compression,
			scratch: o.scratch,
		}
	}
	return newRawImage(rawCfg, layers, o.compression, o.compressJobs)
}

// archiveEntry is where a file of a docker-archive sits in it, or what it
// links to.
type archiveEntry struct {
	offset, size int64
	link         string // cleaned path of the target of a symlink or hard link
}

// archiveEntries are the files of a docker-archive by cleaned path.
type archiveEntries map[string]archiveEntry

// resolve follows links to the regular file name refers to.
func (es archiveEntries) resolve(name string) (archiveEntry, error) {
	clean, err := resolveLinks(name, func(p string) (string, bool) {
		e, ok := es[p]
		return e.link, ok
	})
	return es[clean], err
}

// resolveLinks follows the links of an archive from name to a file: link
// says what an entry links to ("" for a file; ok false: no such entry).
func resolveLinks(name string, link func(string) (target string, ok bool)) (string, error) {
	clean, _ := archivePath(name)
	for range 16 {
		target, ok := link(clean)
		switch {
		case !ok:
			return "", fmt.Errorf("the archive holds no file %q", name)
		case target == "":
			return clean, nil
		}
		clean = target
	}
	return "", fmt.Errorf("%q: a link cycle, or more than 16 links in a row", name)
}

// linkTarget is the cleaned path, inside the archive, that the symlink or
// hard link hdr (at clean) points to; an error if it points outside.
func linkTarget(clean string, hdr *tar.Header) (string, error) {
	target, ok := archivePath(hdr.Linkname)
	if hdr.Typeflag == tar.TypeSymlink {
		target, ok = archivePath(path.Join(path.Dir(clean), hdr.Linkname))
		ok = ok && !path.IsAbs(hdr.Linkname)
	}
	if !ok {
		return "", fmt.Errorf("tar entry %q links outside the archive (%s)", hdr.Name, hdr.Linkname)
	}
	return target, nil
}

// scanArchive reads the tar headers of a docker-archive (seeking over the
// contents), refuses entries that would escape the archive and returns its
// manifest.json after checking every file it names is present, and where
// each file sits.
func scanArchive(p string) (tarball.Manifest, archiveEntries, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, badinput.Errorf("%w", err)
	}
	defer f.Close()
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		return nil, nil, badinput.Errorf("%s is gzip-compressed; a docker-archive is a plain tar (gunzip it first)", p)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(f)
	entries := archiveEntries{}
	var raw []byte
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return nil, nil, badinput.Errorf("%s is not a tar archive: %v", p, err)
			}
			return nil, nil, badinput.Errorf("%s: tar entry %d: %v", p, n+1, err)
		}
		clean, ok := archivePath(hdr.Name)
		if !ok {
			return nil, nil, badinput.Errorf("%s: tar entry %q escapes the archive", p, hdr.Name)
		}
		var e archiveEntry
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			if e.link, err = linkTarget(clean, hdr); err != nil {
				return nil, nil, badinput.Errorf("%s: %w", p, err)
			}
		case tar.TypeReg:
			// After the header, the file offset is where the content starts.
			if e.offset, err = f.Seek(0, io.SeekCurrent); err != nil {
				return nil, nil, err
			}
			e.size = hdr.Size
		}
		entries[clean] = e
		if clean == "manifest.json" && hdr.Typeflag == tar.TypeReg {
			if hdr.Size > maxMetadataBytes {
				return nil, nil, badinput.Errorf("%s: manifest.json is %d bytes, more than the %d allowed", p, hdr.Size, maxMetadataBytes)
			}
			if raw, err = io.ReadAll(tr); err != nil {
				return nil, nil, badinput.Errorf("%s: manifest.json: %v", p, err)
			}
		}
	}
	if raw == nil {
		return nil, nil, badinput.Errorf("%s is not a docker-archive (no manifest.json)", p)
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, badinput.Errorf("%s", jsonError(p+"!manifest.json", raw, err))
	}
	if len(m) == 0 {
		return nil, nil, badinput.Errorf("%s: manifest.json lists no images", p)
	}
	for i, d := range m {
		for _, f := range append([]string{d.Config}, d.Layers...) {
			clean, ok := archivePath(f)
			if !ok || f == "" {
				return nil, nil, badinput.Errorf("%s: manifest.json image %d names %q, outside the archive", p, i, f)
			}
			if _, ok := entries[clean]; !ok {
				return nil, nil, badinput.Errorf("%s: manifest.json image %d names %q, which the archive does not hold", p, i, f)
			}
		}
	}
	return m, entries, nil
}

// archivePath cleans a tar entry name; ok is false if it is absolute or
// climbs out of the archive.
func archivePath(n string) (string, bool) {
	if path.IsAbs(n) || strings.HasPrefix(n, `\`) || (len(n) > 1 && n[1] == ':') {
		return "", false
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

func archiveHasTag(m tarball.Manifest, t name.Tag) bool {
	for _, d := range m {
		for _, s := range d.RepoTags {
			if rt, err := name.NewTag(s); err == nil && rt.Name() == t.Name() {
				return true
			}
		}
	}
	return false
}

func archiveTags(m tarball.Manifest) string {
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, ", ")
}

// ---- Docker daemon ----

func openDaemon(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	opts := append([]daemon.Option{daemon.WithContext(ctx), daemon.WithUnbufferedOpener()}, o.daemon...)
	img, err := daemon.Image(ref, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, badinput.Errorf("the Docker daemon has no image %s: %w", ref, err)
		}
		return nil, fmt.Errorf("docker daemon: %w", err)
	}
	if _, err := img.ConfigFile(); err != nil {
		return nil, fmt.Errorf("docker daemon: image %s: %w", ref, err)
	}
	return img, nil
}

// openDaemonSaved reads src with one image save (daemonsource.go).
func openDaemonSaved(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	return openDaemonStream(ctx, ref, o)
}

// isNotFound recognises the Docker client's "not found" errors (errdefs'
// NotFound interface) without importing errdefs.
func isNotFound(err error) bool {
	var nf interface{ NotFound() }
	if errors.As(err, &nf) {
		return true
	}
	return strings.Contains(err.Error(), "No such image")
}

// ---- registry ----

func openRemote(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, o.remote...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		if isRegistryNotFound(err) {
			return nil, badinput.Errorf("%s not found in the registry: %w", ref, err)
		}
		return nil, err
	}
	var a Artifact
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		if _, err := idx.IndexManifest(); err != nil {
			return nil, badinput.Errorf("%s: index: %w", ref, err)
		}
		a = idx
	case mt.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		if err := validateImage(img, desc.Descriptor, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		a = img
	case mt.IsSchema1():
		return nil, badinput.Errorf("%s is a Docker schema 1 manifest, which is not supported", ref)
	default:
		return nil, badinput.Errorf("%s has media type %q, not an image or an index", ref, mt)
	}
	return a, nil
}

func isRegistryNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	return slices.ContainsFunc(te.Errors, func(d transport.Diagnostic) bool {
		return d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode
	})
}

// ---- platforms ----

// ParsePlatform parses a -platform value OS/ARCH[/VARIANT][:OSVERSION].
func ParsePlatform(s string) (*v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return nil, badinput.Errorf("-platform %q: %w", s, err)
	}
	if p.OS == "" || p.Architecture == "" {
		return nil, badinput.Errorf("-platform %q: want OS/ARCH[/VARIANT], e.g. linux/amd64", s)
	}
	return p, nil
}

// SelectPlatform picks from an index the image built for p (os/arch and,
// when given, variant and os.version; arm64's variant v8 is its default). An
// image is returned as it is if its config's platform matches. A nil p
// returns a unchanged. No match is an badinput.Err error listing what there is.
// An image whose config names no platform is returned with a warning to log
// (nil: none).
func SelectPlatform(a Artifact, p *v1.Platform, log *slog.Logger) (Artifact, error) {
	if p == nil {
		return a, nil
	}
	switch a := a.(type) {
	case v1.ImageIndex:
		var avail []string
		img, err := selectFromIndex(a, *p, &avail, 0)
		if err != nil {
			return nil, err
		}
		if img == nil {
			if len(avail) == 0 {
				return nil, badinput.Errorf("-platform %s: the index lists no platforms", p)
			}
			return nil, badinput.Errorf("-platform %s: not in the index (available: %s)", p, strings.Join(avail, ", "))
		}
		return img, nil
	case v1.Image:
		cfg, err := a.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("-platform %s: image config: %w", p, err)
		}
		have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
		if have.OS == "" && have.Architecture == "" {
			if log != nil {
				log.Warn("the image config names no platform; using the image as it is", "platform", p.String())
			}
			return a, nil
		}
		if !platformMatches(have, *p) {
			return nil, badinput.Errorf("-platform %s: the image is %s", p, have.String())
		}
		return a, nil
	}
	return nil, fmt.Errorf("-platform %s: %T is neither an image nor an index", p, a)
}

func selectFromIndex(idx v1.ImageIndex, want v1.Platform, avail *[]string, depth int) (v1.Image, error) {
	if depth > maxIndexDepth {
		return nil, badinput.Errorf("indexes nested more than %d deep", maxIndexDepth)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var matches []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := selectFromIndex(child, want, avail, depth+1)
			if err != nil || img != nil {
				return img, err
			}
		case d.MediaType.IsImage():
			if d.Platform == nil {
				// Not in the descriptor (a layout of several tagged
				// images): the image's config says.
				if d.Platform, err = configPlatform(idx, d.Digest); err != nil {
					return nil, err
				}
				if d.Platform == nil {
					continue
				}
			}
			*avail = append(*avail, d.Platform.String())
			if platformMatches(*d.Platform, want) {
				matches = append(matches, d)
			}
		}
	}
	if len(matches) == 0 {
		return nil, nil
	}
	if len(matches) > 1 {
		// Several satisfy a loose request (linux/arm: v6 and v7): an exact
		// match wins, else the caller must say which.
		exact := slices.IndexFunc(matches, func(d v1.Descriptor) bool {
			return normalizeVariant(*d.Platform).Equals(normalizeVariant(want))
		})
		if exact < 0 {
			var names []string
			for _, d := range matches {
				names = append(names, d.Platform.String())
			}
			return nil, badinput.Errorf("-platform %s: several images match (%s); name the variant", want.String(), strings.Join(names, ", "))
		}
		matches[0] = matches[exact]
	}
	img, err := idx.Image(matches[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("-platform %s: image %s: %w", want.String(), matches[0].Digest, err)
	}
	return img, nil
}

// configPlatform reads the platform of one of idx's images from its config;
// nil if the config names none.
func configPlatform(idx v1.ImageIndex, h v1.Hash) (*v1.Platform, error) {
	img, err := idx.Image(h)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", h, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", h, err)
	}
	if cfg.OS == "" && cfg.Architecture == "" {
		return nil, nil
	}
	return &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}, nil
}

func normalizeVariant(p v1.Platform) v1.Platform {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}

// platformMatches reports whether have satisfies want: os and architecture
// equal, variant and os.version equal when want names them.
func platformMatches(have, want v1.Platform) bool {
	h, w := normalizeVariant(have), normalizeVariant(want)
	return h.OS == w.OS && h.Architecture == w.Architecture &&
		(w.Variant == "" || h.Variant == w.Variant) &&
		(w.OSVersion == "" || h.OSVersion == w.OSVersion)
}
