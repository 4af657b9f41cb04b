package report

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/google/go-containerregistry/pkg/name"
)

const sha256Prefix = "sha256:"

// digestHexLen is the hex length of each digest algorithm accepted, the
// ones the OCI image spec registers.
var digestHexLen = map[string]int{"sha256": 64, "sha512": 128}

// Short image IDs (docker's "docker images" form) have at least this many
// hex digits.
const minShortImageID = 12

// validate applies the value rules to r; names spell the keys in messages.
func validate(r *Report, names keyNames) error { return validateReport(r, names, false) }

// validateReport is validate; noDigest accepts a report with neither digest
// nor image ID (a lifecycle export to an OCI layout).
func validateReport(r *Report, names keyNames, noDigest bool) error {
	if r == nil {
		return errors.New("no report")
	}
	img := &r.Image
	if len(img.Tags) == 0 {
		return errors.New("[image] tags: empty; want at least one image reference")
	}
	for i, tag := range img.Tags {
		if err := checkTag(tag); err != nil {
			return fmt.Errorf("[image] tags[%d]: %w", i, err)
		}
	}
	if img.Digest != "" {
		if err := checkDigest(img.Digest); err != nil {
			return fmt.Errorf("[image] digest %q: %w", img.Digest, err)
		}
	}
	if img.ImageID != "" {
		if _, err := normaliseImageID(img.ImageID); err != nil {
			return imageIDProblem(names.imageID, img.ImageID)
		}
	}
	if img.Digest == "" && img.ImageID == "" && !noDigest {
		return fmt.Errorf("[image] has neither digest nor %s: a registry or OCI layout export records digest, a daemon export %s", names.imageID, names.imageID)
	}
	if img.ManifestSize < 0 {
		return fmt.Errorf("[image] %s %d: must not be negative", names.manifestSize, img.ManifestSize)
	}
	if img.MediaType != "" {
		if err := checkMediaType(img.MediaType); err != nil {
			return fmt.Errorf("[image] %s %q: %w", names.mediaType, img.MediaType, err)
		}
	}
	return nil
}

// checkTag accepts what name.ParseReference accepts with default options
// (weak validation: registry index.docker.io and tag "latest" may be
// implied), which is always a tag or a digest reference. The string is kept
// as written.
func checkTag(tag string) error {
	if tag == "" {
		return errors.New("empty string, want an image reference")
	}
	// go-containerregistry lets any byte through in a registry name; TOML
	// cannot hold invalid UTF-8, so such a report could be written but not
	// read back.
	if !utf8.ValidString(tag) {
		return fmt.Errorf("%q: not valid UTF-8", tag)
	}
	ref, err := name.ParseReference(tag)
	if err == nil {
		switch ref.(type) {
		case name.Tag, name.Digest:
			return nil
		}
		return fmt.Errorf("%q: neither a tag nor a digest reference", tag)
	}
	// ParseReference only says "could not parse reference"; ask the parser
	// that applies for the specific reason.
	if strings.Contains(tag, "@") {
		_, err = name.NewDigest(tag)
	} else {
		_, err = name.NewTag(tag)
	}
	if err == nil { // should not happen; keep the general message
		err = errors.New("could not parse reference")
	}
	return fmt.Errorf("%q: not a valid image reference: %s", tag, badinput.Fold(err.Error()))
}

// checkDigest accepts "algorithm:hex" with a registered algorithm and the
// right number of lowercase hex digits for it.
func checkDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return errors.New("want algorithm:hex, e.g. sha256:<64 lowercase hex digits>")
	}
	n, known := digestHexLen[alg]
	if !known {
		return fmt.Errorf("unsupported algorithm %q, want sha256 or sha512", alg)
	}
	if len(hex) != n || !isLowerHex(hex) {
		return fmt.Errorf("want %s:<%d lowercase hex digits>", alg, n)
	}
	return nil
}

// normaliseImageID accepts "sha256:<hex>" or "<hex>" with 12 to 64 lowercase
// hex digits. A full ID becomes "sha256:<hex>"; a short one is returned as
// given.
func normaliseImageID(id string) (string, error) {
	hex := strings.TrimPrefix(id, sha256Prefix)
	if len(hex) < minShortImageID || len(hex) > 64 || !isLowerHex(hex) {
		return "", errors.New("malformed image ID")
	}
	if len(hex) == 64 {
		return sha256Prefix + hex, nil
	}
	return id, nil
}

func imageIDProblem(key, id string) error {
	return fmt.Errorf("[image] %s %q: want sha256:<64 lowercase hex digits>, the same without sha256:, or a short ID of %d to 63 hex digits", key, id, minShortImageID)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkMediaType accepts "type/subtype" where both are RFC 6838 section 4.2
// restricted names, without parameters, as OCI descriptors require.
func checkMediaType(mt string) error {
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || !isRestrictedName(typ) || !isRestrictedName(sub) {
		return errors.New("not a media type, want type/subtype (RFC 6838), e.g. application/vnd.oci.image.manifest.v1+json")
	}
	return nil
}

// isRestrictedName reports whether s is an RFC 6838 restricted-name: 1 to
// 127 characters, a letter or digit, then letters, digits and !#$&-^_.+
func isRestrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && strings.IndexByte("!#$&-^_.+", c) >= 0:
		default:
			return false
		}
	}
	return true
}
