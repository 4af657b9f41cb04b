package pushed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/report"
)

// Parse reads data, the content of the input called src, as kind (Auto:
// detected) and returns the kind it read and the images, in the order the
// input lists them. An oci-layout input is a directory: use ReadLayout.
func Parse(kind Kind, src string, data []byte, o Options) (Kind, []Image, error) {
	if kind == Auto {
		k, err := Detect(src, data)
		if err != nil {
			return "", nil, err
		}
		kind = k
	}
	var imgs []Image
	var err error
	switch kind {
	case Report:
		imgs, err = parseReport(src, data)
	case Refs:
		imgs, err = parseRefs(src, data)
	case Digest:
		imgs, err = parseDigest(src, data, o)
	case Buildx:
		imgs, err = parseBuildx(src, data)
	case Jib:
		imgs, err = parseJib(src, data)
	case OCILayout:
		return "", nil, inputErrorf(kind, src, "a layout is a directory (ReadLayout)")
	default:
		return "", nil, inputErrorf(kind, src, "unknown kind; known: %s", kindList())
	}
	if err != nil {
		return "", nil, err
	}
	if len(imgs) == 0 {
		return "", nil, inputErrorf(kind, src, "names no image")
	}
	return kind, imgs, nil
}

var (
	digestLine = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	refLine    = regexp.MustCompile(`^\S+@sha256:[0-9a-f]{64}$`)
)

// Detect tells the kind of a file from its content: a TOML [image] table is
// a report; JSON with containerimage.digest (at the top or per bake target)
// is buildx, with imageDigest jib; one bare digest is digest; lines of
// reference@digest are refs. Anything else is an error naming what it could
// be and why it is not.
func Detect(src string, data []byte) (Kind, error) {
	text := strings.TrimSpace(string(data))
	switch {
	case text == "":
		return "", inputErrorf(Auto, src, "empty: could be any of refs, digest, report, buildx, jib, and is none")
	case !utf8.ValidString(text):
		return "", inputErrorf(Auto, src, "not text: could be none of refs, digest, report, buildx, jib")
	case strings.HasPrefix(text, "{"):
		var doc map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			return "", inputErrorf(Auto, src, "JSON, so buildx or jib, but does not decode: %v", err)
		}
		if _, ok := doc["containerimage.digest"]; ok {
			return Buildx, nil
		}
		if _, ok := doc["imageDigest"]; ok {
			return Jib, nil
		}
		if len(doc) > 0 && allTargets(doc) {
			return Buildx, nil
		}
		return "", inputErrorf(Auto, src, "JSON, so buildx or jib, but has neither containerimage.digest (buildx, or a bake target's) nor imageDigest (jib)")
	case digestLine.MatchString(text):
		return Digest, nil
	}
	lines := strings.Split(text, "\n")
	refs := true
	for _, l := range lines {
		refs = refs && refLine.MatchString(strings.TrimSpace(l))
	}
	if refs {
		return Refs, nil
	}
	if looksLikeTOML(text) {
		return Report, nil
	}
	return "", inputErrorf(Auto, src, "neither refs (lines of REF@sha256:<hex>), digest (one sha256:<hex>), report (TOML with [image]), buildx nor jib (JSON): line 1 is %q", truncate(lines[0], 80))
}

// allTargets: every value is an object with containerimage.digest (bake).
func allTargets(doc map[string]json.RawMessage) bool {
	for _, v := range doc {
		var t map[string]json.RawMessage
		if json.Unmarshal(v, &t) != nil {
			return false
		}
		if _, ok := t["containerimage.digest"]; !ok {
			return false
		}
	}
	return true
}

// looksLikeTOML: a line that opens the [image] table.
func looksLikeTOML(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "[image]" {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for !utf8.ValidString(s[:n]) {
		n--
	}
	return s[:n] + "..."
}

// parseReport reads report.toml (report.Parse: both spellings).
func parseReport(src string, data []byte) ([]Image, error) {
	r, err := report.ParseWithoutDigest(src, data)
	if err != nil {
		return nil, err
	}
	return []Image{{
		Refs:      append([]string(nil), r.Image.Tags...),
		Digest:    r.Image.Digest,
		ImageID:   r.Image.ImageID,
		MediaType: r.Image.MediaType,
		Size:      r.Image.ManifestSize,
	}}, nil
}

// reference checks a reference as written (a tag, or a repository) and
// returns it without a digest.
func reference(kind Kind, src, what, ref string) (string, error) {
	if strings.ContainsAny(ref, " \t\r\n") || ref == "" {
		return "", inputErrorf(kind, src, "%s %q is not an image reference", what, ref)
	}
	if _, _, err := parseRef(ref); err != nil {
		return "", inputErrorf(kind, src, "%s %q: %v", what, ref, err)
	}
	return ref, nil
}

// parseRef parses a tag or repository reference (no digest), strictly: a
// tag is only what is written after the last path component's ':'.
func parseRef(ref string) (repo name.Repository, tagged bool, err error) {
	if strings.Contains(ref, "@") {
		return name.Repository{}, false, errors.New("carries a digest where a tag or repository is expected")
	}
	if strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		t, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			return name.Repository{}, false, err
		}
		return t.Context(), true, nil
	}
	r, err := name.NewRepository(ref, name.StrictValidation)
	return r, false, err
}

func checkDigest(kind Kind, src, what, d string) (string, error) {
	h, err := v1.NewHash(d)
	if err != nil || h.Algorithm != "sha256" || !digestLine.MatchString(d) {
		return "", inputErrorf(kind, src, "%s %q is not sha256:<64 lowercase hex>", what, truncate(d, 80))
	}
	return d, nil
}

// parseRefs reads one REF@sha256:<hex> per line (REF a tag or a
// repository). Lines naming the same digest in one repository are one image
// (its tags merged); a digest listed without a tag in a repository that
// already has an image is one of that image's platform manifests (ko lists
// an index and then each platform's manifest).
func parseRefs(src string, data []byte) ([]Image, error) {
	var imgs []Image
	byRepo := map[string]int{}    // repository -> index of its first image
	byKey := map[string]int{}     // repository@digest -> image index
	platform := map[string]bool{} // repository@digest seen as a platform manifest
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		base, d, ok := strings.Cut(line, "@")
		if !ok {
			return nil, inputErrorf(Refs, src, "line %d: %q has no @sha256:<hex>", i+1, truncate(line, 120))
		}
		if _, err := checkDigest(Refs, src, fmt.Sprintf("line %d: digest", i+1), d); err != nil {
			return nil, err
		}
		ref, err := reference(Refs, src, fmt.Sprintf("line %d: reference", i+1), base)
		if err != nil {
			return nil, err
		}
		r, tagged, _ := parseRef(ref)
		repo := r.Name()
		key := repo + "@" + d
		if platform[key] {
			continue
		}
		if at, ok := byKey[key]; ok {
			if !contains(imgs[at].Refs, ref) {
				imgs[at].Refs = append(imgs[at].Refs, ref)
			}
			continue
		}
		if first, ok := byRepo[repo]; ok && !tagged {
			imgs[first].Platforms = append(imgs[first].Platforms, d)
			platform[key] = true
			continue
		}
		byKey[key] = len(imgs)
		if _, ok := byRepo[repo]; !ok {
			byRepo[repo] = len(imgs)
		}
		imgs = append(imgs, Image{Refs: []string{ref}, Digest: d, Verify: true})
	}
	return imgs, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseDigest reads a bare sha256:<hex> (a final newline allowed), for the
// image o.Image names.
func parseDigest(src string, data []byte, o Options) ([]Image, error) {
	d := strings.TrimSpace(string(data))
	if _, err := checkDigest(Digest, src, "content", d); err != nil {
		return nil, err
	}
	if o.Image == "" {
		return nil, inputErrorf(Digest, src, "a bare digest names no image: give -image REF")
	}
	ref, given, _ := strings.Cut(o.Image, "@")
	if given != "" && given != d {
		return nil, inputErrorf(Digest, src, "-image %s names digest %s, the file says %s", o.Image, given, d)
	}
	if _, err := reference(Digest, src, "-image", ref); err != nil {
		return nil, err
	}
	return []Image{{Refs: []string{ref}, Digest: d, Verify: true}}, nil
}

// buildxResult is one build's --metadata-file object.
type buildxResult struct {
	Digest     *string `json:"containerimage.digest"`
	Descriptor *struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"containerimage.descriptor"`
	Name *string `json:"image.name"`
}

// parseBuildx reads docker buildx's --metadata-file: a build's object, or
// bake's map of target to object, in the file's order.
func parseBuildx(src string, data []byte) ([]Image, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, inputErrorf(Buildx, src, "not a JSON object: %v", err)
	}
	if _, ok := top["containerimage.digest"]; ok {
		img, err := buildxImage(src, "", data)
		if err != nil {
			return nil, err
		}
		return []Image{img}, nil
	}
	targets, err := orderedKeys(data)
	if err != nil {
		return nil, inputErrorf(Buildx, src, "not a JSON object: %v", err)
	}
	var imgs []Image
	for _, target := range targets {
		img, err := buildxImage(src, target, top[target])
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func buildxImage(src, target string, data []byte) (Image, error) {
	where := "the build"
	if target != "" {
		where = fmt.Sprintf("target %q", target)
	}
	var r buildxResult
	if err := json.Unmarshal(data, &r); err != nil {
		return Image{}, inputErrorf(Buildx, src, "%s: %v", where, err)
	}
	if r.Digest == nil {
		return Image{}, inputErrorf(Buildx, src, "%s has no containerimage.digest (not pushed, or not an image build)", where)
	}
	d, err := checkDigest(Buildx, src, where+": containerimage.digest", *r.Digest)
	if err != nil {
		return Image{}, err
	}
	if r.Name == nil || strings.TrimSpace(*r.Name) == "" {
		return Image{}, inputErrorf(Buildx, src, "%s has no image.name: nothing says where it was pushed", where)
	}
	img := Image{Digest: d, Verify: true}
	for _, n := range strings.Split(*r.Name, ",") {
		ref, err := reference(Buildx, src, where+": image.name", strings.TrimSpace(n))
		if err != nil {
			return Image{}, err
		}
		if !contains(img.Refs, ref) {
			img.Refs = append(img.Refs, ref)
		}
	}
	if desc := r.Descriptor; desc != nil {
		if desc.Digest != d {
			return Image{}, inputErrorf(Buildx, src, "%s: containerimage.descriptor has digest %s, containerimage.digest %s", where, desc.Digest, d)
		}
		img.MediaType, img.Size = desc.MediaType, desc.Size
	}
	return img, nil
}

// orderedKeys are the keys of a JSON object in the order written.
func orderedKeys(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("does not start with {")
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return keys, nil
}

// jibOutput is jib's jib-image.json.
type jibOutput struct {
	Image       *string  `json:"image"`
	ImageID     string   `json:"imageId"`
	ImageDigest *string  `json:"imageDigest"`
	Tags        []string `json:"tags"`
	ImagePushed *bool    `json:"imagePushed"`
}

// parseJib reads jib-image.json: image (with its tag), its digest and id,
// and the other tags (names only) of the same repository.
func parseJib(src string, data []byte) ([]Image, error) {
	var j jibOutput
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, inputErrorf(Jib, src, "not jib-image.json: %v", err)
	}
	if j.Image == nil || j.ImageDigest == nil {
		return nil, inputErrorf(Jib, src, "not jib-image.json: image and imageDigest are required")
	}
	d, err := checkDigest(Jib, src, "imageDigest", *j.ImageDigest)
	if err != nil {
		return nil, err
	}
	ref, err := reference(Jib, src, "image", *j.Image)
	if err != nil {
		return nil, err
	}
	repo, _, _ := parseRef(ref)
	img := Image{Refs: []string{ref}, Digest: d, Verify: true}
	if j.ImageID != "" {
		if img.ImageID, err = checkDigest(Jib, src, "imageId", j.ImageID); err != nil {
			return nil, err
		}
	}
	for _, tag := range j.Tags {
		t, err := name.NewTag(repo.Name()+":"+tag, name.StrictValidation)
		if err != nil || strings.ContainsAny(tag, ":/@") {
			return nil, inputErrorf(Jib, src, "tag %q is not a tag", truncate(tag, 80))
		}
		full := repo.String() + ":" + t.TagStr()
		if !contains(img.Refs, full) && !sameRef(full, ref) {
			img.Refs = append(img.Refs, full)
		}
	}
	return []Image{img}, nil
}

// sameRef says whether two references name the same thing once normalised
// (docker.io/library/app:1 is app:1).
func sameRef(a, b string) bool {
	ra, errA := name.ParseReference(a)
	rb, errB := name.ParseReference(b)
	return errA == nil && errB == nil && ra.Name() == rb.Name()
}
