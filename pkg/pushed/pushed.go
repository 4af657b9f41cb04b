// Package pushed reads what a builder wrote about the images it pushed, in
// each builder's own format, into one form: a list of images, each with the
// references it was pushed to and its digest. report2results turns that
// list into Tekton results, a report.toml and an OCI layout, whatever the
// builder (docs/results.md, "Inputs").
//
//	report      report.toml: export-step, the Buildpacks lifecycle (both spellings)
//	refs        one repo[:tag]@sha256:<hex> per line: ko --image-refs, crane push
//	            --image-refs, crane digest --full-ref, kaniko --image-name-with-digest-file
//	            and --image-name-tag-with-digest-file
//	digest      a bare sha256:<hex>: kaniko --digest-file, buildah/podman/skopeo
//	            --digestfile, jib's jib-image.digest; the image is named by -image
//	buildx      docker buildx --metadata-file JSON, build or bake
//	jib         jib's jib-image.json
//	oci-layout  an OCI image layout directory: its index.json and ref names
//	auto        detected from the content
//
// Parsing is pure (Parse takes the bytes); reading a layout directory is
// ReadLayout. Every error is the input's fault (it wraps badinput.Err or
// report.ErrInvalid) and names the input.
package pushed

import (
	"fmt"
	"slices"
	"strings"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// Kind is an input format.
type Kind string

// The kinds of input.
const (
	Report    Kind = "report"
	Refs      Kind = "refs"
	Digest    Kind = "digest"
	Buildx    Kind = "buildx"
	Jib       Kind = "jib"
	OCILayout Kind = "oci-layout"
	Auto      Kind = "auto"
)

// Kinds are the formats, auto last.
var Kinds = []Kind{Report, Refs, Digest, Buildx, Jib, OCILayout, Auto}

// From is one input: -from KIND:PATH.
type From struct {
	Kind Kind
	Path string
}

func (f From) String() string { return string(f.Kind) + ":" + f.Path }

// ParseFrom parses KIND:PATH (the flag package names the flag and value
// in its error).
func ParseFrom(s string) (From, error) {
	kind, path, ok := strings.Cut(s, ":")
	if !ok || path == "" {
		return From{}, badinput.Errorf("want KIND:PATH, KIND one of %s", kindList())
	}
	k := Kind(kind)
	if !slices.Contains(Kinds, k) {
		return From{}, badinput.Errorf("unknown kind %q; known: %s", kind, kindList())
	}
	return From{Kind: k, Path: path}, nil
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Image is one image a builder pushed (or wrote to a layout or a daemon).
type Image struct {
	// Refs are the references it was pushed to, as written (normalised
	// only where the format gives a tag apart from its repository): each
	// registry/repository[:tag], without a digest. A reference without a
	// tag (ko, crane --image-refs) is the repository itself.
	Refs []string
	// Digest is the manifest's or index's digest, "sha256:<hex>"; empty
	// when the input does not say (a lifecycle layout export's report; a
	// daemon export).
	Digest string
	// ImageID is a daemon export's image ID (report), or jib's imageId.
	ImageID string
	// MediaType and Size describe the manifest, when the input says.
	MediaType string
	Size      int64
	// Platforms are the digests of the manifests of an index that the
	// input listed too (ko --image-refs); they are not images of their own.
	Platforms []string
	// Verify says whether the input is a builder's own claim that the
	// registry should confirm (every kind but report: a report.toml is the
	// exporter's record, written after it checked the registry).
	Verify bool
}

// Options are what some kinds need besides their content.
type Options struct {
	// Image names the image of a bare digest (digest kind), and the
	// repository of a layout whose ref names are tags only (oci-layout).
	Image string
}

// inputErrorf names the input in a one-line bad-input error.
func inputErrorf(kind Kind, src, format string, args ...any) error {
	return badinput.Errorf("-from %s:%s: %s", kind, src, fmt.Sprintf(format, args...))
}

// FromList is the value of a repeatable -from KIND:PATH flag.
type FromList []From

func (f *FromList) String() string {
	s := make([]string, len(*f))
	for i, x := range *f {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

// Set parses one KIND:PATH and appends it.
func (f *FromList) Set(s string) error {
	from, err := ParseFrom(s)
	if err != nil {
		return err
	}
	*f = append(*f, from)
	return nil
}
