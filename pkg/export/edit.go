package export

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// referenceTypeAnnotation = attestationManifest marks BuildKit's attestation
// manifests in an index: they describe a sibling image by digest, which the
// edits change.
const (
	referenceTypeAnnotation = "vnd.docker.reference.type"
	attestationManifest     = "attestation-manifest"
)

// Apply appends the -append layers and makes the config edits of e, to an
// image or to every image of an index (the index is rebuilt with the same
// media type, and each descriptor keeps its platform and annotations). Empty
// edits return a unchanged, same digest.
//
// The result depends only on a, e and the appended files: layers are tar
// streams of the files in sorted order, owned by 0:0, with mtime e.Created
// (truncated to seconds; the zero time means the Unix epoch), which is also
// the config's created time and that of the new history entries. Layers are
// built once per Apply and never held in memory; with e.CacheDir the
// compressed layer is kept there and an unchanged directory is not
// compressed again. ctx must live as long as the result is being written:
// an appended layer walks its directory again each time it is read.
func Apply(ctx context.Context, a Artifact, e Edits, log *slog.Logger) (Artifact, error) {
	if e.Empty() {
		return a, nil
	}
	if err := checkEnv(e.Env); err != nil {
		return nil, err
	}
	created := e.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)

	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ed := &editor{edits: e, created: created, done: map[v1.Hash]v1.Image{}, log: log}
	for _, spec := range e.Append {
		dl, err := scanDir(spec, created)
		if err != nil {
			return nil, err
		}
		var l v1.Layer
		if e.CacheDir != "" {
			l, err = dl.cachedLayer(ctx, e.CacheDir, log)
		} else {
			l, err = dl.layer(ctx)
		}
		if err != nil {
			return nil, err
		}
		ed.layers = append(ed.layers, mutate.Addendum{
			Layer: l,
			History: v1.History{
				Created:   v1.Time{Time: created},
				CreatedBy: "export-step -append: add directory at /" + dl.prefix,
			},
		})
	}

	switch a := a.(type) {
	case v1.Image:
		img, err := ed.image(a)
		if err != nil {
			return nil, fmt.Errorf("edit image: %w", err)
		}
		return img, nil
	case v1.ImageIndex:
		idx, err := ed.index(a, 0)
		if err != nil {
			return nil, fmt.Errorf("edit index: %w", err)
		}
		return idx, nil
	}
	return nil, fmt.Errorf("edit: %T is neither an image nor an index", a)
}

func checkEnv(env []string) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return badinput.Errorf("-env %q: want KEY=VALUE", kv)
		}
	}
	return nil
}

type editor struct {
	edits   Edits
	created time.Time
	layers  []mutate.Addendum
	done    map[v1.Hash]v1.Image // edited index children by source digest (an index may list one twice)
	log     *slog.Logger
}

func (ed *editor) image(img v1.Image) (v1.Image, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	layerType := types.DockerLayer
	if mt == types.OCIManifestSchema1 {
		layerType = types.OCILayer
	}
	out := img
	if len(ed.layers) > 0 {
		adds := make([]mutate.Addendum, len(ed.layers))
		for i, add := range ed.layers {
			add.MediaType = layerType
			adds[i] = add
		}
		if out, err = mutate.Append(out, adds...); err != nil {
			return nil, fmt.Errorf("append layers: %w", err)
		}
	}
	cfg, err := out.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg = cfg.DeepCopy()
	editConfig(&cfg.Config, ed.edits)
	cfg.Created = v1.Time{Time: ed.created}
	if out, err = mutate.ConfigFile(out, cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out, nil
}

// editConfig applies the config edits: labels merged, env set or replaced
// in place, the rest replaced when given.
func editConfig(c *v1.Config, e Edits) {
	if len(e.Labels) > 0 {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		maps.Copy(c.Labels, e.Labels)
	}
	for _, kv := range e.Env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range c.Env {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				c.Env[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			c.Env = append(c.Env, kv)
		}
	}
	if e.Entrypoint != nil {
		c.Entrypoint = nil
		if len(e.Entrypoint) > 0 {
			c.Entrypoint = append([]string(nil), e.Entrypoint...)
		}
	}
	if e.Cmd != nil {
		c.Cmd = nil
		if len(e.Cmd) > 0 {
			c.Cmd = append([]string(nil), e.Cmd...)
		}
	}
	if e.Workdir != nil {
		c.WorkingDir = *e.Workdir
	}
	if e.User != nil {
		c.User = *e.User
	}
}

func (ed *editor) index(idx v1.ImageIndex, depth int) (v1.ImageIndex, error) {
	if depth > maxIndexDepth {
		return nil, badinput.Errorf("indexes nested more than %d deep", maxIndexDepth)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.IndexAddendum, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		if d.Annotations[referenceTypeAnnotation] == attestationManifest {
			ed.log.Warn("dropping an attestation manifest: it describes an image the edits replace",
				"digest", d.Digest.String(), "describes", d.Annotations["vnd.docker.reference.digest"])
			continue
		}
		var child mutate.Appendable
		switch {
		case d.MediaType.IsImage():
			if done, ok := ed.done[d.Digest]; ok {
				child = done
				break
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			edited, err := ed.image(img)
			if err != nil {
				return nil, fmt.Errorf("image %s (%s): %w", d.Digest, platformString(d.Platform), err)
			}
			ed.done[d.Digest], child = edited, edited
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			if child, err = ed.index(sub, depth+1); err != nil {
				return nil, fmt.Errorf("index %s: %w", d.Digest, err)
			}
		default:
			return nil, badinput.Errorf("manifest %s has media type %q: only images and indexes can be edited", d.Digest, d.MediaType)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: child,
			Descriptor: v1.Descriptor{
				MediaType:    d.MediaType,
				Platform:     d.Platform,
				Annotations:  d.Annotations,
				URLs:         d.URLs,
				ArtifactType: d.ArtifactType,
			},
		})
	}
	out := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mt), adds...)
	if len(im.Annotations) > 0 {
		out = mutate.Annotations(out, im.Annotations).(v1.ImageIndex)
	}
	if im.Subject != nil {
		out = mutate.Subject(out, *im.Subject).(v1.ImageIndex)
	}
	return out, nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "no platform"
	}
	return p.String()
}
