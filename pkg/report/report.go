// Package report defines report.toml, the machine-readable record of what an
// export produced (Buildpacks RFC "Export Report"), and reads, validates and
// writes it. It is importable by other platforms.
package report

import (
	"errors"
	"io"
	"strings"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

// MaxSize is the largest report Read and Parse accept, in bytes. A real
// report is a few hundred bytes; 4 MiB leaves room for thousands of tags and
// a lifecycle [build] bill of materials while bounding memory.
const MaxSize = 4 << 20

// DefaultPath is where the report goes when no path is given: report.toml in
// the working directory (by convention /layers), as the RFC says.
const DefaultPath = "report.toml"

// EnvPath names the environment variable that overrides DefaultPath, as the
// Buildpacks platform does.
const EnvPath = "CNB_REPORT_PATH"

// Schema selects the spelling Write uses.
type Schema string

const (
	// SchemaRFC spells keys as the RFC does: image_id, plus our extensions
	// manifest_size and media_type.
	SchemaRFC Schema = "rfc"
	// SchemaPlatform spells keys exactly as the Buildpacks lifecycle writes
	// them and kpack decodes them: image-id (hex, no "sha256:"),
	// manifest-size, no media_type.
	SchemaPlatform Schema = "platform"
)

// ErrInvalid is wrapped by every error that is the input's fault: a missing,
// malformed or inconsistent report. Callers map it to exit code 2.
var ErrInvalid = errors.New("invalid report")

// Report is the whole of report.toml.
type Report struct {
	Image Image
}

// Image is the [image] table.
type Image struct {
	// Tags lists every reference written, fully qualified, in order given.
	Tags []string
	// Digest is "algorithm:hex" of the manifest or index written to a
	// registry or OCI layout; empty for a daemon export.
	Digest string
	// ImageID is the daemon's image ID, normalised to "sha256:<hex>" when it
	// is full length; a short ID stays as the hex given. Empty for a registry
	// export.
	ImageID string
	// ManifestSize is the size in bytes of the manifest or index; 0 unknown.
	ManifestSize int64
	// MediaType is the manifest or index media type; empty when unknown.
	MediaType string
}

// Read reads and validates the report at path. Errors name the file and, for
// TOML syntax errors, the line and column; they wrap ErrInvalid, and a
// missing file also wraps fs.ErrNotExist. A file larger than MaxSize is
// refused without being read whole. See docs/report.md for what is accepted.
func Read(path string) (*Report, error) { return read(path) }

// ReadWithoutDigest is Read, accepting what ParseWithoutDigest accepts.
func ReadWithoutDigest(path string) (*Report, error) { return readReport(path, true) }

// Parse decodes and validates a report from data; name is used in errors.
// It accepts every spelling Read does: image_id or image-id (with or without
// "sha256:", full or short), manifest_size or manifest-size (integer or
// quoted integer), media_type or media-type; a [build] table and unknown keys
// are ignored. The same field spelled both ways with different values is an
// error.
func Parse(name string, data []byte) (*Report, error) { return parse(name, data, false) }

// ParseWithoutDigest is Parse, but a report with neither digest nor image
// ID is accepted too: the Buildpacks lifecycle writes one when it exports
// to an OCI layout (-layout), where the digest then is (the layout of each
// tag, under the lifecycle's layout directory).
func ParseWithoutDigest(name string, data []byte) (*Report, error) { return parse(name, data, true) }

// Validate checks the report against the schema rules in DESIGN.md, the
// same rules Parse applies: at least one tag, each a valid image reference;
// digest, when set, "sha256:<64 hex>" or "sha512:<128 hex>"; image ID, when
// set, "sha256:<64 hex>", 64 hex, or 12 to 63 hex digits (short); at least
// one of digest and image ID; manifest size not negative; media type, when
// set, "type/subtype" per RFC 6838. Errors wrap ErrInvalid.
func (r *Report) Validate() error {
	if err := validate(r, rfcKeys); err != nil {
		return newError("report: ", err, nil)
	}
	return nil
}

// Encode validates r and writes it to w in the given schema; the empty
// schema means SchemaRFC. Output is deterministic. An invalid report or an
// unknown schema is an error wrapping ErrInvalid, and nothing is written.
func Encode(w io.Writer, r *Report, schema Schema) error { return encode(w, r, schema) }

// Write validates r and writes it to path atomically and durably, with
// atomicfile.WriteFile: a temp file in the same directory, mode 0644,
// fsync, rename, fsync of the directory. The directory is created if
// missing. On failure no temp file is left behind and an existing report at
// path is untouched. Validation errors wrap ErrInvalid; I/O errors do not.
func Write(path string, r *Report, schema Schema) error {
	return write(path, r, schema, atomicfile.WriteFile)
}

// Remove deletes a stale report at path; a missing file is not an error.
// A directory at path is an error wrapping ErrInvalid, and is not removed.
func Remove(path string) error { return remove(path) }

// ParseSchema parses a -report-schema flag value: "rfc" or "platform"; the
// empty string means SchemaRFC. Anything else is an error wrapping ErrInvalid.
func ParseSchema(s string) (Schema, error) {
	switch Schema(s) {
	case "", SchemaRFC:
		return SchemaRFC, nil
	case SchemaPlatform:
		return SchemaPlatform, nil
	}
	return "", unknownSchema(Schema(s))
}

// String returns the schema's flag spelling.
func (s Schema) String() string { return string(s) }

// IsDaemon reports whether the image was exported to a Docker daemon: it has
// an image ID and no registry digest.
func (i Image) IsDaemon() bool { return i.ImageID != "" && i.Digest == "" }

// ImageIDHex returns the image ID without its "sha256:" prefix, as the
// Buildpacks platform spells it; empty when there is no image ID.
func (i Image) ImageIDHex() string { return strings.TrimPrefix(i.ImageID, sha256Prefix) }

// Set parses a flag value with ParseSchema, so a *Schema is a flag.Value.
func (s *Schema) Set(v string) error {
	parsed, err := ParseSchema(v)
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}
