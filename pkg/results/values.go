package results

import (
	"encoding/json"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/pushed"
	"github.com/exportreport/exportreport/pkg/report"
)

// Result is one Tekton result: the file Name in the results directory and
// its Value, written as is (no trailing newline).
type Result struct {
	Name  string
	Value string
}

// Compute returns the results asked for, in the order asked, named under
// prefix, for a report. source names the report in errors (its path). A
// value the report cannot give is an error, never an empty or made-up value:
// IMAGE_DIGEST, IMAGE_REF, IMAGES and ARTIFACT_OUTPUTS need a registry
// digest (a daemon export has only an image ID), IMAGE_ID needs an image ID.
func Compute(r *report.Report, source string, kinds []Kind, prefix string) ([]Result, error) {
	if r == nil {
		return nil, badinput.Errorf("report %s: empty", source)
	}
	return ComputeImages([]pushed.Image{imageOf(r)}, 0, "report "+source, kinds, prefix)
}

// ComputeImages is Compute for images read from any input (source names
// them in errors, "report PATH" or the -from inputs): IMAGES lists every
// reference of every image, one ref@digest per line; the others name
// imgs[primary].
func ComputeImages(imgs []pushed.Image, primary int, source string, kinds []Kind, prefix string) ([]Result, error) {
	if len(imgs) == 0 || primary < 0 || primary >= len(imgs) {
		return nil, badinput.Errorf("%s: no image", source)
	}
	for _, img := range imgs {
		if err := check(asReport(img), source); err != nil {
			return nil, err
		}
	}
	img := imgs[primary]
	out := make([]Result, 0, len(kinds))
	for _, k := range kinds {
		n, err := ResultName(prefix, k)
		if err != nil {
			return nil, err
		}
		var v string
		switch k {
		case ImageDigest, ImageRef, Images, ArtifactOutputs:
			need := []pushed.Image{img}
			if k == Images {
				need = imgs
			}
			for _, i := range need {
				if i.Digest == "" {
					return nil, badinput.Errorf("-results %s: %s is from a daemon export: it has image_id but no registry digest; ask for IMAGE_ID", k, source)
				}
			}
			switch k {
			case ImageDigest:
				v = img.Digest
			case ImageRef:
				v = withDigest(img.Refs[0], img.Digest)
			case Images:
				v = allImages(imgs)
			case ArtifactOutputs:
				if v, err = artifactOutputs(img); err != nil {
					return nil, badinput.Errorf("-results %s: %s: %v", k, source, err)
				}
			}
		case ImageURL:
			v = stripDigest(img.Refs[0])
		case ImageID:
			if img.ImageID == "" {
				return nil, badinput.Errorf("-results %s: %s is from a registry export: it has a digest but no image_id; ask for IMAGE_DIGEST", k, source)
			}
			v = img.ImageID
		default:
			return nil, badinput.Errorf("-results: unknown result %q; known: %s", k, joinKinds(Kinds))
		}
		out = append(out, Result{Name: n, Value: v})
	}
	return out, nil
}

// artifactOutputs is the ARTIFACT_OUTPUTS object of img: the repository
// of its first reference, as go-containerregistry (and Chains, for
// IMAGE_URL) names it, its digest, and isBuildArtifact the string "true".
func artifactOutputs(img pushed.Image) (string, error) {
	ref, err := name.ParseReference(img.Refs[0])
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]string{
		"uri":             ref.Context().Name(),
		"digest":          img.Digest,
		"isBuildArtifact": "true",
	})
	return string(b), err
}

// check makes sure the values computed from r are sound even when r did
// not come from report.Read: tags that are references, a digest that is
// algorithm:hex, a tag that carries a digest carrying the report's.
func check(r *report.Report, source string) error {
	if r == nil {
		return badinput.Errorf("report %s: empty", source)
	}
	img := r.Image
	if len(img.Tags) == 0 {
		return badinput.Errorf("report %s: [image] tags is empty", source)
	}
	if img.Digest == "" && img.ImageID == "" {
		return badinput.Errorf("report %s: [image] has neither digest nor image_id", source)
	}
	if img.Digest != "" {
		if _, err := v1.NewHash(img.Digest); err != nil {
			return badinput.Errorf("report %s: [image] digest %q: %v", source, img.Digest, err)
		}
	}
	for _, t := range img.Tags {
		if _, err := name.ParseReference(t); err != nil {
			return badinput.Errorf("report %s: [image] tag %q: %v", source, t, err)
		}
		if _, d, ok := strings.Cut(t, "@"); ok && img.Digest != "" && d != img.Digest {
			return badinput.Errorf("report %s: [image] tag %q names digest %s, the report's digest is %s", source, t, d, img.Digest)
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

// allImages returns one ref@digest per distinct reference of every image,
// in order, joined by newlines, without a trailing newline.
func allImages(imgs []pushed.Image) string {
	seen := map[string]bool{}
	var lines []string
	for _, img := range imgs {
		for _, t := range img.Refs {
			l := withDigest(t, img.Digest)
			if seen[l] {
				continue
			}
			seen[l] = true
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
