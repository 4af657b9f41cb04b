package results

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrBadInput is wrapped by every error that is the caller's fault: an
// unknown result name, a bad prefix, a result the report cannot give (an
// IMAGE_DIGEST from a daemon export), results over the size budget. Commands
// map it, like report.ErrInvalid, to exit code 2.
var ErrBadInput = errors.New("bad input")

// badInput is an error whose message is exactly its text and which matches
// ErrBadInput with errors.Is.
type badInput struct{ msg string }

func (e *badInput) Error() string        { return e.msg }
func (e *badInput) Is(target error) bool { return target == ErrBadInput }

// badInputf formats a one-line error: a line break in what it quotes (a
// go-containerregistry error repeats the reference as it was written, which
// may hold one) is escaped, so the message stays one line.
func badInputf(format string, args ...any) error {
	return &badInput{msg: oneLine.Replace(fmt.Sprintf(format, args...))}
}

var oneLine = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`)

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
)

// Kinds lists every Kind, in documentation order.
var Kinds = []Kind{ImageDigest, ImageURL, Images, ImageID, ImageRef}

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
			return nil, badInputf("-results %q: unknown result %q; known: %s", list, k, joinKinds(Kinds))
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
		return "", badInputf("-prefix %q: result name %q is not a valid Tekton result name (%s)", prefix, n, resultNameFormat)
	}
	return n, nil
}

// CheckPrefix reports whether prefix gives valid Tekton result names.
func CheckPrefix(prefix string) error {
	_, err := ResultName(prefix, ImageDigest)
	return err
}
