package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/exportreport/exportreport/pkg/badinput"
)

// Key spellings. The RFC spells multi-word keys with "_", the Buildpacks
// platform (lifecycle, kpack) with "-".
const (
	keyImage        = "image"
	keyTags         = "tags"
	keyDigest       = "digest"
	keyImageID      = "image_id"
	keyImageIDAlt   = "image-id"
	keyManifest     = "manifest_size"
	keyManifestAlt  = "manifest-size"
	keyMediaType    = "media_type"
	keyMediaTypeAlt = "media-type"
)

// keyNames are the spellings used in validation messages: those found in
// the file, or the RFC's for a Report value.
type keyNames struct {
	imageID, manifestSize, mediaType string
}

var rfcKeys = keyNames{imageID: keyImageID, manifestSize: keyManifest, mediaType: keyMediaType}

// missingHint is appended to the error for a report that does not exist.
const missingHint = "no such file: the export did not finish, so no report was written"

func read(path string) (*Report, error) { return readReport(path, false) }

func readReport(path string, noDigest bool) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileError(path, errors.New(missingHint), err)
		}
		return nil, fileError(path, pathProblem(err), err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fileError(path, pathProblem(err), err)
	}
	if info.IsDir() {
		return nil, fileError(path, errors.New("is a directory, want a report.toml file"), nil)
	}
	data, err := readLimited(f, info)
	if err != nil {
		return nil, fileError(path, pathProblem(err), err)
	}
	return parse(path, data, noDigest)
}

// readLimited reads at most one byte past MaxSize: enough to tell "too
// big" without holding a huge file in memory. The buffer is sized from the
// file's size, so a regular file is read with one allocation.
func readLimited(r io.Reader, info fs.FileInfo) ([]byte, error) {
	const limit = MaxSize + 1
	size := int64(limit)
	if info.Mode().IsRegular() && info.Size() < limit {
		size = info.Size() + 1 // the file may have grown since Stat
	}
	// bytes.MinRead spare bytes: ReadFrom grows the buffer when less is free.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(r, limit))
	return buf.Bytes(), err
}

// pathProblem drops the path an *fs.PathError repeats: the caller names the
// file already.
func pathProblem(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func sizeProblem() error {
	return fmt.Errorf("larger than the %d MiB (%d bytes) limit for a report", MaxSize>>20, MaxSize)
}

func parse(name string, data []byte, noDigest bool) (*Report, error) {
	if len(data) > MaxSize {
		return nil, fileError(name, sizeProblem(), nil)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := badinput.Fold(pe.Message)
			return nil, fileError(name, fmt.Errorf("line %d, column %d: not valid TOML: %s", pe.Position.Line, pe.Position.Col, msg), pe)
		}
		return nil, fileError(name, fmt.Errorf("not valid TOML: %s", badinput.Fold(err.Error())), err)
	}
	r, names, err := decodeImage(doc)
	if err != nil {
		return nil, fileError(name, err, nil)
	}
	if err := validateReport(r, names, noDigest); err != nil {
		return nil, fileError(name, err, nil)
	}
	return r, nil
}

// decodeImage turns the decoded TOML document into a Report, checking types
// and reconciling the two spellings of each key. Value rules are left to
// validate.
func decodeImage(doc map[string]any) (*Report, keyNames, error) {
	names := rfcKeys
	raw, ok := doc[keyImage]
	if !ok {
		return nil, names, errors.New("no [image] table")
	}
	table, ok := raw.(map[string]any)
	if !ok {
		return nil, names, fmt.Errorf("image is %s, want an [image] table", typeName(raw))
	}
	r := &Report{}
	img := &r.Image

	tags, err := decodeTags(table)
	if err != nil {
		return nil, names, err
	}
	img.Tags = tags

	if img.Digest, err = stringKey(table, keyDigest); err != nil {
		return nil, names, err
	}

	img.ImageID, names.imageID, err = eitherString(table, keyImageID, keyImageIDAlt, func(key, v string) (string, error) {
		id, err := normaliseImageID(v)
		if err != nil {
			return "", imageIDProblem(key, v)
		}
		return id, nil
	}, func(a, b string) bool {
		return strings.TrimPrefix(a, sha256Prefix) == strings.TrimPrefix(b, sha256Prefix)
	})
	if err != nil {
		return nil, names, err
	}

	img.ManifestSize, names.manifestSize, err = decodeManifestSize(table)
	if err != nil {
		return nil, names, err
	}

	img.MediaType, names.mediaType, err = eitherString(table, keyMediaType, keyMediaTypeAlt, nil, nil)
	if err != nil {
		return nil, names, err
	}
	return r, names, nil
}

func decodeTags(table map[string]any) ([]string, error) {
	raw, ok := table[keyTags]
	if !ok {
		return nil, errors.New("[image] tags: missing; want at least one image reference")
	}
	list, ok := raw.([]any)
	if !ok {
		if _, tables := raw.([]map[string]any); tables {
			return nil, errors.New("[image] tags: is an array of tables, want an array of strings")
		}
		return nil, fmt.Errorf("[image] tags: is %s, want an array of strings", typeName(raw))
	}
	tags := make([]string, 0, len(list))
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("[image] tags[%d]: is %s, want a string", i, typeName(v))
		}
		tags = append(tags, s)
	}
	return tags, nil
}

// stringKey returns the string at key; absent and "" are the same.
func stringKey(table map[string]any, key string) (string, error) {
	raw, ok := table[key]
	if !ok {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("[image] %s: is %s, want a string", key, typeName(raw))
	}
	return s, nil
}

// eitherString reads a string that may be spelled key or alt. normalise (may
// be nil) checks and canonicalises a non-empty value; same (may be nil,
// meaning ==) compares two canonical values. It returns the value and the
// spelling it came from (key when absent).
func eitherString(table map[string]any, key, alt string, normalise func(key, v string) (string, error), same func(a, b string) bool) (string, string, error) {
	get := func(k string) (string, error) {
		v, err := stringKey(table, k)
		if err != nil || v == "" || normalise == nil {
			return v, err
		}
		return normalise(k, v)
	}
	a, err := get(key)
	if err != nil {
		return "", key, err
	}
	b, err := get(alt)
	if err != nil {
		return "", alt, err
	}
	switch {
	case a == "" && b == "":
		return "", key, nil
	case b == "":
		return a, key, nil
	case a == "":
		return b, alt, nil
	}
	if same == nil {
		same = func(a, b string) bool { return a == b }
	}
	if !same(a, b) {
		return "", key, fmt.Errorf("[image] %s %q and %s %q disagree; give one", key, table[key], alt, table[alt])
	}
	return a, key, nil
}

// decodeManifestSize reads manifest_size or manifest-size: an integer, or a
// string holding a decimal integer (the Platform spec's example quotes it).
func decodeManifestSize(table map[string]any) (int64, string, error) {
	get := func(key string) (int64, bool, error) {
		raw, ok := table[key]
		if !ok {
			return 0, false, nil
		}
		switch v := raw.(type) {
		case int64:
			return v, true, nil
		case string:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, true, fmt.Errorf("[image] %s %q: want a whole number of bytes", key, v)
			}
			return n, true, nil
		}
		return 0, true, fmt.Errorf("[image] %s: is %s, want a whole number of bytes", key, typeName(raw))
	}
	a, hasA, err := get(keyManifest)
	if err != nil {
		return 0, keyManifest, err
	}
	b, hasB, err := get(keyManifestAlt)
	if err != nil {
		return 0, keyManifestAlt, err
	}
	switch {
	case hasA && hasB && a != b:
		return 0, keyManifest, fmt.Errorf("[image] %s %d and %s %d disagree; give one", keyManifest, a, keyManifestAlt, b)
	case hasA || !hasB:
		return a, keyManifest, nil
	}
	return b, keyManifestAlt, nil
}

// typeName names a decoded TOML value's type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}
