package results

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/report"
)

// Result is one Tekton result: the file Name in the results directory and
// its Value, written as is (no trailing newline).
type Result struct {
	Name  string
	Value string
}

// Compute returns the results asked for, in the order asked, named under
// prefix. source names the report in errors (its path). A value the report
// cannot give is an error, never an empty or made-up value: IMAGE_DIGEST,
// IMAGE_REF and IMAGES need a registry digest (a daemon export has only an
// image ID), IMAGE_ID needs an image ID.
func Compute(r *report.Report, source string, kinds []Kind, prefix string) ([]Result, error) {
	if err := check(r, source); err != nil {
		return nil, err
	}
	img := r.Image
	out := make([]Result, 0, len(kinds))
	for _, k := range kinds {
		n, err := ResultName(prefix, k)
		if err != nil {
			return nil, err
		}
		var v string
		switch k {
		case ImageDigest, ImageRef, Images:
			if img.Digest == "" {
				return nil, badInputf("-results %s: report %s is from a daemon export: it has image_id but no registry digest; ask for IMAGE_ID", k, source)
			}
			switch k {
			case ImageDigest:
				v = img.Digest
			case ImageRef:
				v = withDigest(img.Tags[0], img.Digest)
			case Images:
				v = images(img.Tags, img.Digest)
			}
		case ImageURL:
			v = stripDigest(img.Tags[0])
		case ImageID:
			if img.ImageID == "" {
				return nil, badInputf("-results %s: report %s is from a registry export: it has a digest but no image_id; ask for IMAGE_DIGEST", k, source)
			}
			v = img.ImageID
		default:
			return nil, badInputf("-results: unknown result %q; known: %s", k, joinKinds(Kinds))
		}
		out = append(out, Result{Name: n, Value: v})
	}
	return out, nil
}

// check makes sure the values computed from r are sound even when r did
// not come from report.Read: tags that are references, a digest that is
// algorithm:hex, a tag that carries a digest carrying the report's.
func check(r *report.Report, source string) error {
	if r == nil {
		return badInputf("report %s: empty", source)
	}
	img := r.Image
	if len(img.Tags) == 0 {
		return badInputf("report %s: [image] tags is empty", source)
	}
	if img.Digest == "" && img.ImageID == "" {
		return badInputf("report %s: [image] has neither digest nor image_id", source)
	}
	if img.Digest != "" {
		if _, err := v1.NewHash(img.Digest); err != nil {
			return badInputf("report %s: [image] digest %q: %v", source, img.Digest, err)
		}
	}
	for _, t := range img.Tags {
		if _, err := name.ParseReference(t); err != nil {
			return badInputf("report %s: [image] tag %q: %v", source, t, err)
		}
		if _, d, ok := strings.Cut(t, "@"); ok && img.Digest != "" && d != img.Digest {
			return badInputf("report %s: [image] tag %q names digest %s, the report's digest is %s", source, t, d, img.Digest)
		}
	}
	return nil
}

// stripDigest returns ref without an "@digest" suffix.
func stripDigest(ref string) string {
	base, _, _ := strings.Cut(ref, "@")
	return base
}

// withDigest returns ref@digest, or ref itself when it already carries a
// digest (check made sure it is the same one).
func withDigest(ref, digest string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	return ref + "@" + digest
}

// images returns one tag@digest per distinct tag, in order, joined by
// newlines, without a trailing newline.
func images(tags []string, digest string) string {
	seen := map[string]bool{}
	lines := make([]string, 0, len(tags))
	for _, t := range tags {
		l := withDigest(t, digest)
		if seen[l] {
			continue
		}
		seen[l] = true
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}
