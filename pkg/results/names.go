package results

import (
	"regexp"
	"strings"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// Kind is a result this package can compute; a result's name is its Kind,
// optionally prefixed.
type Kind string

const (
	// ImageDigest is the digest of the manifest or index written,
	// "sha256:<hex>". Tekton Chains type hint *IMAGE_DIGEST.
	ImageDigest Kind = "IMAGE_DIGEST"
	// ImageURL is the first tag as written (without an "@digest" it may
	// carry, since Chains joins it with IMAGE_DIGEST). Chains type hint
	// *IMAGE_URL.
	ImageURL Kind = "IMAGE_URL"
	// Images is one "tag@digest" per line, every tag. Chains type hint
	// IMAGES (read only without a prefix).
	Images Kind = "IMAGES"
	// ImageID is the image ID a daemon export reports.
	ImageID Kind = "IMAGE_ID"
	// ImageRef is IMAGE_URL@IMAGE_DIGEST.
	ImageRef Kind = "IMAGE_REF"
	// ArtifactOutputs is Tekton's object result {"uri": REPOSITORY,
	// "digest": "sha256:<hex>", "isBuildArtifact": "true"}, the form
	// Chains' SLSA v1.0 formatter (slsa/v2alpha4) takes as a subject.
	// Chains type hint *ARTIFACT_OUTPUTS.
	ArtifactOutputs Kind = "ARTIFACT_OUTPUTS"
)

// Kinds lists every Kind, in documentation order.
var Kinds = []Kind{ImageDigest, ImageURL, Images, ImageID, ImageRef, ArtifactOutputs}

// DefaultKinds is what -results asks for by default.
var DefaultKinds = []Kind{ImageDigest, ImageURL}

// resultNameFormat is Tekton's rule for result names, ResultNameFormat in
// github.com/tektoncd/pipeline pkg/apis/pipeline/v1/result_validation.go:
// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
// Result files are named after results, so this also keeps names free of '/'.
var resultNameFormat = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)

// ParseKinds parses a comma-separated -results list ("IMAGE_DIGEST,IMAGE_URL").
// Spaces around names and empty entries are ignored, a repeated name counts
// once, and an unknown name is an error listing the known ones. An empty list
// asks for no result files.
func ParseKinds(list string) ([]Kind, error) {
	var kinds []Kind
	seen := map[Kind]bool{}
	for _, f := range strings.Split(list, ",") {
		k := Kind(strings.TrimSpace(f))
		if k == "" || seen[k] {
			continue
		}
		if !known(k) {
			return nil, badinput.Errorf("-results %q: unknown result %q; known: %s", list, k, joinKinds(Kinds))
		}
		seen[k] = true
		kinds = append(kinds, k)
	}
	return kinds, nil
}

func known(k Kind) bool {
	for _, c := range Kinds {
		if c == k {
			return true
		}
	}
	return false
}

func joinKinds(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// ResultName returns the name of result k under prefix: k itself, or
// PREFIX_k. The name must be a valid Tekton result name.
func ResultName(prefix string, k Kind) (string, error) {
	n := string(k)
	if prefix != "" {
		n = prefix + "_" + n
	}
	if !resultNameFormat.MatchString(n) {
		return "", badinput.Errorf("-prefix %q: result name %q is not a valid Tekton result name (%s)", prefix, n, resultNameFormat)
	}
	return n, nil
}

// CheckPrefix reports whether prefix gives valid Tekton result names.
func CheckPrefix(prefix string) error {
	_, err := ResultName(prefix, ImageDigest)
	return err
}
