package export

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/exportreport/exportreport/pkg/export/internal/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// registryConfig is the push policy.
type registryConfig struct {
	transport http.RoundTripper // from registry.NewTransport
	keychain  authn.Keychain
	jobs      int
	backoff   remote.Backoff
	progress  io.Writer // nil: no progress lines
	interval  time.Duration
	log       *slog.Logger
}

// repoTags are the destination tags of one repository, in the order given.
type repoTags struct {
	repo name.Repository
	tags []name.Tag
}

// groupByRegistry groups tags by repository, and repositories by registry,
// both in order of first appearance.
func groupByRegistry(tags []name.Tag) [][]*repoTags {
	var out [][]*repoTags
	regIdx := map[string]int{}
	repos := map[string]*repoTags{}
	for _, t := range tags {
		repo := t.Context()
		if g, ok := repos[repo.Name()]; ok {
			g.tags = append(g.tags, t)
			continue
		}
		g := &repoTags{repo: repo, tags: []name.Tag{t}}
		repos[repo.Name()] = g
		reg := repo.RegistryStr()
		i, ok := regIdx[reg]
		if !ok {
			i = len(out)
			regIdx[reg] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], g)
	}
	return out
}

// pushAndVerify writes art to every tag and checks that every registry
// returned the digest computed here. It returns art's descriptor.
//
// Per repository, the first tag's manifest is checked with one HEAD: if it
// already names art (an unchanged re-export), every other tag gets one HEAD
// too and only the tags that differ are written. Otherwise blobs are
// uploaded once (registry.Uploader: a POST that offers each for mounting, then one
// monolithic PUT), the manifest is PUT for the first tag, and every other
// tag of that repository costs one manifest PUT. The first repository of
// each registry is pushed in full; the registry's other repositories then
// mount the blobs from it. Registries are pushed concurrently; at most jobs
// repositories upload at a time, each with at most jobs parallel blob
// uploads.
//
// The digest of an image whose layers are compressed here (a docker-archive,
// the daemon: layerStreamer) is known only once every layer is: its push
// does not wait for it, but uploads each layer as soon as it is compressed,
// and learns the digest for the manifest PUT (or when the first tag
// exists already, to compare).
func pushAndVerify(ctx context.Context, art Artifact, tags []name.Tag, c registryConfig) (*v1.Descriptor, error) {
	describe := sync.OnceValues(func() (*v1.Descriptor, error) {
		desc, err := partial.Descriptor(art)
		if err != nil {
			return nil, fmt.Errorf("compute the digest of the image: %w", err)
		}
		return desc, nil
	})
	if _, streams := art.(layerStreamer); !streams {
		if _, err := describe(); err != nil {
			return nil, err
		}
	}
	switch art.(type) {
	case v1.Image, v1.ImageIndex:
	default:
		return nil, fmt.Errorf("cannot push %T: neither an image nor an index", art)
	}

	rec := &digestRecorder{next: c.transport, got: map[string]string{}}
	c.transport = rec

	slots := make(chan struct{}, c.jobs)
	g, gctx := errgroup.WithContext(ctx)
	for _, registry := range groupByRegistry(tags) {
		g.Go(func() error {
			first := registry[0]
			if err := pushRepo(gctx, art, describe, first, first.tags[0], rec, slots, c); err != nil {
				return err
			}
			rg, rctx := errgroup.WithContext(gctx)
			for _, other := range registry[1:] {
				rg.Go(func() error {
					return pushRepo(rctx, art, describe, other, first.tags[0], rec, slots, c)
				})
			}
			return rg.Wait()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	desc, err := describe()
	if err != nil {
		return nil, err
	}

	var mismatches []string
	for _, t := range tags {
		got, err := registryDigest(ctx, t, rec, c)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", t.Name(), err)
		}
		if got != desc.Digest.String() {
			mismatches = append(mismatches, fmt.Sprintf("%s: expected %s, registry returned %s", t.Name(), desc.Digest, got))
			continue
		}
		c.log.Info("pushed", "tag", t.Name(), "digest", got)
	}
	if len(mismatches) > 0 {
		return nil, fmt.Errorf("verify: digest mismatch for %s", strings.Join(mismatches, "; "))
	}
	return desc, nil
}

// pushRepo writes art to the tags of g. Blobs are offered for mounting from
// the repository of mountFrom (g's own repository when g is the first of
// its registry). The digests of tags found already naming art are recorded
// in rec, for the verification.
func pushRepo(ctx context.Context, art Artifact, describe func() (*v1.Descriptor, error), g *repoTags, mountFrom name.Reference, rec *digestRecorder, slots chan struct{}, c registryConfig) error {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-slots }()
	primary := g.tags[0]

	img, isImage := art.(v1.Image)
	var blobs []registry.Blob
	var pullFrom []name.Repository
	if isImage {
		var err error
		if ls, ok := art.(layerStreamer); ok {
			blobs, err = ls.streamBlobs(mountFrom.Context())
		} else {
			blobs, err = registry.ImageBlobs(img, mountFrom.Context())
		}
		if err != nil {
			return fmt.Errorf("push %s: %w", primary.Name(), err)
		}
		for _, b := range blobs {
			pullFrom = append(pullFrom, b.From)
		}
	}
	rc, err := registry.NewClient(ctx, g.repo, pullFrom, registry.Config{
		Transport: c.transport, Keychain: c.keychain, Backoff: c.backoff, UserAgent: UserAgent,
	})
	if err != nil {
		return fmt.Errorf("push %s: %w", primary.Name(), err)
	}

	// One HEAD of the first tag. When it names art already (an unchanged
	// re-export), one HEAD of each other tag, and only the tags that
	// differ are written.
	got, err := rc.HeadManifest(ctx, primary.TagStr())
	if err != nil {
		return fmt.Errorf("push %s: %w", primary.Name(), err)
	}
	reexport := got != ""
	todo := g.tags
	want := ""
	if reexport {
		desc, err := describe()
		if err != nil {
			return err
		}
		want = desc.Digest.String()
	}
	if reexport && got == want {
		rec.record(primary, got)
		var mu sync.Mutex
		todo = nil
		hg, hctx := errgroup.WithContext(ctx)
		hg.SetLimit(max(c.jobs, 1))
		for _, t := range g.tags[1:] {
			hg.Go(func() error {
				got, err := rc.HeadManifest(hctx, t.TagStr())
				if err != nil {
					return fmt.Errorf("push %s: %w", t.Name(), err)
				}
				if got == want {
					rec.record(t, got)
					return nil
				}
				mu.Lock()
				todo = append(todo, t)
				mu.Unlock()
				return nil
			})
		}
		if err := hg.Wait(); err != nil {
			return err
		}
	}

	// Progress is counted with atomic adds (registry.Counter), never sent
	// on a channel: a request body may still be read after its request
	// returned, and after this function has.
	counter := &registry.Counter{}
	if c.progress != nil && len(todo) > 0 && todo[0] == primary {
		defer printProgress(c.progress, g.repo.Name(), counter, c.interval)()
	}
	pusher := func() (*remote.Pusher, error) {
		return remote.NewPusher(
			remote.WithContext(ctx),
			remote.WithAuthFromKeychain(c.keychain),
			remote.WithTransport(c.transport),
			remote.WithJobs(c.jobs),
			remote.WithUserAgent(UserAgent),
			remote.WithRetryBackoff(c.backoff),
			remote.WithRetryStatusCodes(registry.RetryStatusCodes...),
			remote.WithRetryPredicate(registry.IsTransient),
		)
	}

	if len(todo) > 0 && todo[0] == primary {
		if isImage {
			u := &registry.Uploader{Client: rc, Counter: counter, Fallback: func(ctx context.Context, l v1.Layer) error {
				p, err := pusher()
				if err != nil {
					return err
				}
				return p.Upload(ctx, g.repo, l)
			}}
			if err := u.Upload(ctx, blobs, c.jobs, reexport); err != nil {
				return fmt.Errorf("push %s: %w", primary.Name(), err)
			}
			// The manifest PUTs below, the first tag's with the others.
		} else {
			// An index: go-containerregistry writes its children and their
			// blobs (mounted from mountFrom's repository), then the index.
			p, err := pusher()
			if err != nil {
				return fmt.Errorf("push %s: %w", primary.Name(), err)
			}
			counter.Total.Add(blobTotal(art))
			wrap := func(l v1.Layer) v1.Layer { return registry.CountedLayer(l, counter) }
			if mountFrom.Context().Name() != g.repo.Name() {
				wrap = func(l v1.Layer) v1.Layer {
					return &remote.MountableLayer{Layer: registry.CountedLayer(l, counter), Reference: mountFrom}
				}
			}
			src := wrapLayers(art, wrap)
			if err := p.Push(ctx, primary, src); err != nil {
				return fmt.Errorf("push %s: %w", primary.Name(), err)
			}
			todo = todo[1:]
		}
	}
	if len(todo) == 0 {
		return nil
	}
	desc, err := describe()
	if err != nil {
		return err
	}
	raw, err := art.RawManifest()
	if err != nil {
		return fmt.Errorf("push %s: read the manifest: %w", primary.Name(), err)
	}
	// One manifest PUT per tag, all tags at once once the blobs are there,
	// jobs at a time (the registry checks every blob of the manifest on each
	// PUT, so one after the other they add up: 10 tags took 1.85 × one tag,
	// docs/benchmarks.md).
	tg, tctx := errgroup.WithContext(ctx)
	tg.SetLimit(max(c.jobs, 1))
	for _, t := range todo {
		tg.Go(func() error {
			if err := rc.PutManifest(tctx, t.TagStr(), string(desc.MediaType), raw); err != nil {
				if t == primary {
					return fmt.Errorf("push %s: %w", t.Name(), err)
				}
				return fmt.Errorf("tag %s: %w", t.Name(), err)
			}
			return nil
		})
	}
	return tg.Wait()
}

// registryDigest is the digest the registry holds for t: the
// Docker-Content-Digest of our manifest PUT, or else (no PUT was needed, or
// the registry sent no header) what a HEAD of the tag says, or else the
// digest of the manifest a GET returns.
func registryDigest(ctx context.Context, t name.Tag, rec *digestRecorder, c registryConfig) (string, error) {
	if got := rec.digest(t); got != "" {
		return got, nil
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.transport),
		remote.WithUserAgent(UserAgent),
		remote.WithRetryBackoff(c.backoff),
		remote.WithRetryStatusCodes(registry.RetryStatusCodes...),
		remote.WithRetryPredicate(registry.IsTransient),
	}
	d, err := remote.Head(t, opts...)
	if err == nil {
		return d.Digest.String(), nil
	}
	gd, gerr := remote.Get(t, opts...)
	if gerr != nil {
		return "", fmt.Errorf("HEAD: %v; GET: %w", err, gerr)
	}
	return gd.Digest.String(), nil
}

// digestRecorder records the Docker-Content-Digest header of every
// successful manifest PUT, by registry host and path.
type digestRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  map[string]string
}

func (d *digestRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodPut || resp.StatusCode/100 != 2 ||
		!strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	d.mu.Lock()
	d.got[strings.ToLower(req.URL.Host)+req.URL.Path] = resp.Header.Get("Docker-Content-Digest")
	d.mu.Unlock()
	return resp, err
}

// record notes that the registry returned digest for t (a HEAD of the tag).
func (d *digestRecorder) record(t name.Tag, digest string) {
	key := strings.ToLower(t.RegistryStr()) + "/v2/" + t.RepositoryStr() + "/manifests/" + t.TagStr()
	d.mu.Lock()
	d.got[key] = digest
	d.mu.Unlock()
}

func (d *digestRecorder) digest(t name.Tag) string {
	key := strings.ToLower(t.RegistryStr()) + "/v2/" + t.RepositoryStr() + "/manifests/" + t.TagStr()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[key]
}

// wrapLayers returns art with every layer and config blob of every image
// in it passed through wrap when the push asks for it: to mount them from
// another repository (remote.MountableLayer) and to count the bytes read
// (countedLayer).
func wrapLayers(art Artifact, wrap func(v1.Layer) v1.Layer) Artifact {
	switch a := art.(type) {
	case v1.Image:
		return &wrappedImage{Image: a, wrap: wrap}
	case v1.ImageIndex:
		return &wrappedIndex{inner: a, wrap: wrap}
	}
	return art
}

type wrappedImage struct {
	v1.Image
	wrap func(v1.Layer) v1.Layer
}

func (m *wrappedImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.wrap(l)
	}
	return out, nil
}

func (m *wrappedImage) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(m.Image)
	if err != nil {
		return nil, err
	}
	return m.wrap(l), nil
}

type wrappedIndex struct {
	inner v1.ImageIndex
	wrap  func(v1.Layer) v1.Layer
}

func (m *wrappedIndex) MediaType() (types.MediaType, error)       { return m.inner.MediaType() }
func (m *wrappedIndex) Digest() (v1.Hash, error)                  { return m.inner.Digest() }
func (m *wrappedIndex) Size() (int64, error)                      { return m.inner.Size() }
func (m *wrappedIndex) IndexManifest() (*v1.IndexManifest, error) { return m.inner.IndexManifest() }
func (m *wrappedIndex) RawManifest() ([]byte, error)              { return m.inner.RawManifest() }

func (m *wrappedIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.inner.Image(h)
	if err != nil {
		return nil, err
	}
	return &wrappedImage{Image: img, wrap: m.wrap}, nil
}

func (m *wrappedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := m.inner.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return &wrappedIndex{inner: idx, wrap: m.wrap}, nil
}

// Manifests keeps the children the wrapped index knows (lazy images, blobs)
// and wraps them.
func (m *wrappedIndex) Manifests() ([]partial.Describable, error) {
	children, err := partial.Manifests(m.inner)
	if err != nil {
		return nil, err
	}
	out := make([]partial.Describable, len(children))
	for i, c := range children {
		switch c := c.(type) {
		case v1.ImageIndex:
			out[i] = &wrappedIndex{inner: c, wrap: m.wrap}
		case v1.Image:
			out[i] = &wrappedImage{Image: c, wrap: m.wrap}
		case v1.Layer:
			out[i] = m.wrap(c)
		default:
			out[i] = c
		}
	}
	return out, nil
}

// blobTotal is the size of the distributable blobs (layers and configs) of
// every image in art, each digest once: what a push sends at most. It is
// for progress lines only; what cannot be read counts as nothing.
func blobTotal(art Artifact) int64 {
	seen := map[v1.Hash]bool{}
	var total int64
	var walk func(a Artifact, depth int)
	walk = func(a Artifact, depth int) {
		switch a := a.(type) {
		case v1.Image:
			blobs, err := registry.ImageBlobs(a, name.Repository{})
			if err != nil {
				return
			}
			for _, b := range blobs {
				if !seen[b.Digest] {
					seen[b.Digest] = true
					total += b.Size
				}
			}
		case v1.ImageIndex:
			children, err := partial.Manifests(a)
			if err != nil || depth > 4 {
				return
			}
			for _, c := range children {
				if ca, ok := c.(Artifact); ok {
					walk(ca, depth+1)
				}
			}
		}
	}
	walk(art, 0)
	return total
}
