// Package report defines report.toml, the machine-readable record of what an
// export produced (Buildpacks RFC "Export Report"), and reads, validates and
// writes it. It is importable by other platforms.
package report

import (
	"errors"
	"io"
)

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
// missing file also wraps fs.ErrNotExist.
func Read(path string) (*Report, error) { panic("unimplemented") }

// Parse decodes and validates a report from data; name is used in errors.
func Parse(name string, data []byte) (*Report, error) { panic("unimplemented") }

// Validate checks the report against the schema rules in DESIGN.md.
func (r *Report) Validate() error { panic("unimplemented") }

// Encode writes r to w in the given schema.
func Encode(w io.Writer, r *Report, schema Schema) error { panic("unimplemented") }

// Write validates r and writes it to path atomically: a temp file in the
// same directory, fsync, rename.
func Write(path string, r *Report, schema Schema) error { panic("unimplemented") }

// Remove deletes a stale report at path; a missing file is not an error.
func Remove(path string) error { panic("unimplemented") }
