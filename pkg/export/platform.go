package export

// -platform: ParsePlatform and SelectPlatform.

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/badinput"
)

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
