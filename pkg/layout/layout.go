// Package layout writes the OCI image layout that downstream tasks read: an
// oci-layout file and an index.json listing the image of a report under
// each of its tags, all pointing at the manifest (or index) the export
// wrote. An existing layout is merged into, never replaced (Merge): its
// other descriptors and its blobs stay, so the build's own layout keeps
// what it lists. Blobs already in the layout (export-step -oci-layout
// writes the image itself there) make `skopeo inspect oci:DIR:TAG` work;
// without them (a registry-only export) Fetch can add the manifests and
// configs.
//
// The report's descriptors are built with go-containerregistry (empty.Index
// and mutate.AppendManifests); a descriptor's media type and size come from
// the report, or from one HEAD request to the registry when the report lacks
// them (a Buildpacks lifecycle report).
package layout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/atomicfile"
	"github.com/exportreport/exportreport/pkg/insecureregistry"
	"github.com/exportreport/exportreport/pkg/report"
)

// Annotation keys written on every descriptor of index.json.
const (
	// AnnotationRefName is the OCI annotation naming a reference inside a
	// layout; tools match it against TAG in oci:DIR:TAG. It carries the tag
	// only, as containerd and BuildKit write it, so that oci:DIR:latest works.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationImageName carries the full reference, as containerd does.
	AnnotationImageName = "io.containerd.image.name"
)

// layoutFile is the content of the oci-layout file (OCI image-layout spec).
const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

// ErrNeedRegistry is wrapped when the report lacks the media type or size of
// its manifest and the registry may not be asked (WithOffline).
var ErrNeedRegistry = errors.New("the report lacks the manifest media type or size and -offline forbids asking the registry")

// Option configures Describe.
type Option func(*options)

type options struct {
	offline   bool
	insecure  insecureregistry.Hosts
	keychain  authn.Keychain
	transport http.RoundTripper
	logger    *slog.Logger
}

// WithOffline forbids any registry request: Describe fails with
// ErrNeedRegistry when the report does not carry media type and size.
func WithOffline(offline bool) Option { return func(o *options) { o.offline = offline } }

// WithInsecureRegistries lets Describe talk plain HTTP, or HTTPS without
// certificate verification, to these hosts (host[:port]) and no others,
// matched as insecureregistry.Hosts.Match says (the rule export-step applies).
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) { o.insecure = append(o.insecure, hosts...) }
}

// WithKeychain sets where credentials come from; the default is
// authn.DefaultKeychain (DOCKER_CONFIG, ~/.docker/config.json).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sets the HTTP transport for registry requests (tests count
// requests with it); insecure hosts still get certificate checks disabled
// only when the transport is an *http.Transport.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithLogger sets the logger for debug messages about registry requests.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) *options {
	o := &options{keychain: authn.DefaultKeychain, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Describe returns the descriptor (media type, digest, size) of the manifest
// or index the report names. It uses the report's manifest size and media
// type when both are present and otherwise sends exactly one HEAD request
// for FIRST_TAG_REPOSITORY@DIGEST, checking that the registry's digest is
// the report's. A report without a digest (a daemon export) is an error.
func Describe(ctx context.Context, r *report.Report, opts ...Option) (v1.Descriptor, error) {
	o := newOptions(opts)
	img := r.Image
	if img.Digest == "" {
		return v1.Descriptor{}, errors.New("no registry digest (a daemon export); an OCI layout needs one")
	}
	digest, err := v1.NewHash(img.Digest)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("digest %q: %w", img.Digest, err)
	}
	desc := v1.Descriptor{MediaType: types.MediaType(img.MediaType), Digest: digest, Size: img.ManifestSize}
	if desc.MediaType != "" && desc.Size > 0 {
		return desc, nil
	}
	if len(img.Tags) == 0 {
		return v1.Descriptor{}, errors.New("no tags")
	}
	if o.offline {
		return v1.Descriptor{}, ErrNeedRegistry
	}

	ref, err := digestReference(img.Tags[0], digest, o.insecure)
	if err != nil {
		return v1.Descriptor{}, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain)}
	if t := o.transportFor(ref.Context().RegistryStr()); t != nil {
		ropts = append(ropts, remote.WithTransport(t))
	}
	o.logger.Debug("HEAD manifest for media type and size", "ref", ref.String())
	got, err := remote.Head(ref, ropts...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: %w", ref, err)
	}
	if got.Digest != digest {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: registry has digest %s, the report says %s", ref, got.Digest, digest)
	}
	if desc.Size > 0 && got.Size != desc.Size {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: registry has size %d, the report says %d", ref, got.Size, desc.Size)
	}
	if desc.MediaType != "" && got.MediaType != desc.MediaType {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: registry has media type %s, the report says %s", ref, got.MediaType, desc.MediaType)
	}
	if got.MediaType == "" || got.Size <= 0 {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: registry did not return a media type and size", ref)
	}
	return v1.Descriptor{MediaType: got.MediaType, Digest: digest, Size: got.Size}, nil
}

// transportFor returns the transport to use for host, or nil for the
// default. An insecure host gets certificate verification turned off (plain
// HTTP is chosen by name.Insecure on the reference).
func (o *options) transportFor(host string) http.RoundTripper {
	if !o.insecure.Match(host) {
		return o.transport
	}
	base := o.transport
	if base == nil {
		base = remote.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return base
	}
	return insecureregistry.Unverified(t)
}

// digestReference turns a tag into REPOSITORY@digest, marking the registry
// insecure when the host was named with WithInsecureRegistries.
func digestReference(tag string, digest v1.Hash, insecureHosts insecureregistry.Hosts) (name.Digest, error) {
	ref, err := name.ParseReference(tag)
	if err != nil {
		return name.Digest{}, fmt.Errorf("tag %q: %w", tag, err)
	}
	repo := ref.Context()
	if insecureHosts.Match(repo.RegistryStr()) {
		repo, err = name.NewRepository(repo.Name(), name.Insecure)
		if err != nil {
			return name.Digest{}, fmt.Errorf("tag %q: %w", tag, err)
		}
	}
	return repo.Digest(digest.String()), nil
}

// descriptorOnly is a manifest known only by its descriptor: the index
// points at it without holding it (its blobs may or may not be in the
// layout).
type descriptorOnly struct{ d v1.Descriptor }

func (d descriptorOnly) Descriptor() (*v1.Descriptor, error) { c := d.d; return &c, nil }
func (d descriptorOnly) Digest() (v1.Hash, error)            { return d.d.Digest, nil }
func (d descriptorOnly) MediaType() (types.MediaType, error) { return d.d.MediaType, nil }
func (d descriptorOnly) Size() (int64, error)                { return d.d.Size, nil }

// Index returns an OCI image index with one descriptor per distinct tag, in
// order, each a copy of desc annotated with AnnotationRefName (the tag part
// of the reference, left out when the reference has none) and
// AnnotationImageName (the full reference as written).
func Index(tags []string, desc v1.Descriptor) (v1.ImageIndex, error) {
	if desc.MediaType == "" || desc.Size <= 0 || desc.Digest == (v1.Hash{}) {
		return nil, fmt.Errorf("descriptor needs media type, size and digest: %+v", desc)
	}
	seen := map[string]bool{}
	var adds []mutate.IndexAddendum
	for _, t := range tags {
		if seen[t] {
			continue
		}
		seen[t] = true
		if _, err := name.ParseReference(t); err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		d := desc
		d.Annotations = map[string]string{AnnotationImageName: t}
		if tag := TagOf(t); tag != "" {
			d.Annotations[AnnotationRefName] = tag
		}
		adds = append(adds, mutate.IndexAddendum{Add: descriptorOnly{d}, Descriptor: d})
	}
	return mutate.AppendManifests(empty.Index, adds...), nil
}

// TagOf returns the tag written in reference s ("latest" in
// "reg.example.com:5000/app:latest@sha256:..."), or "" when s names no tag.
func TagOf(s string) string {
	s, _, _ = strings.Cut(s, "@")
	slash := strings.LastIndex(s, "/")
	if i := strings.LastIndex(s, ":"); i > slash {
		return s[i+1:]
	}
	return ""
}

// Write makes dir an OCI image layout whose index.json is index (from
// Merge): it writes oci-layout and then index.json, each to a temp file in
// dir renamed into place, so a reader sees the old file or the new one,
// never half of one. Blobs already under dir/blobs are kept; dir is created
// if missing. Nothing is fsynced (atomicfile.Replace): use WriteDurable for
// a layout that must survive a crash of the machine.
func Write(dir string, index []byte) error {
	return write(dir, index, atomicfile.ReplaceFile)
}

// WriteDurable is Write, with each file and dir fsynced.
func WriteDurable(dir string, index []byte) error {
	return write(dir, index, atomicfile.WriteFile)
}

func write(dir string, index []byte, writeFile func(string, []byte, os.FileMode) error) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("-oci-layout %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "oci-layout"), []byte(layoutFile), 0o644); err != nil {
		return fmt.Errorf("-oci-layout %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return fmt.Errorf("-oci-layout %s: %w", dir, err)
	}
	return nil
}

// Head asks the registry, with one HEAD request, for the descriptor of ref
// as written (a tag, a repository meaning its latest tag, or a digest
// reference), with the options' keychain, transport and insecure hosts.
// WithOffline makes it fail with ErrNeedRegistry.
func Head(ctx context.Context, ref string, opts ...Option) (v1.Descriptor, error) {
	o := newOptions(opts)
	if o.offline {
		return v1.Descriptor{}, ErrNeedRegistry
	}
	var nopts []name.Option
	if r, err := name.ParseReference(ref); err == nil && o.insecure.Match(r.Context().RegistryStr()) {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reference %q: %w", ref, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain)}
	if t := o.transportFor(r.Context().RegistryStr()); t != nil {
		ropts = append(ropts, remote.WithTransport(t))
	}
	o.logger.Debug("HEAD manifest", "ref", r.String())
	got, err := remote.Head(r, ropts...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("HEAD %s: %w", r, err)
	}
	return *got, nil
}
