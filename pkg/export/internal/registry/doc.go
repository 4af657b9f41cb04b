// Package registry is export-step's own registry client, the way a blob
// goes up: the HTTP transport (per-host TLS policy, the idle timeout of a
// stalled connection, Retry-After), the one retry loop (Retry, IsTransient,
// the time budget: ErrBudget), a Client for one repository (manifest HEAD
// and PUT, blob HEAD) and the Uploader that sends an image's blobs in two
// requests each (a POST that offers a mount, one monolithic PUT), falling
// back to go-containerregistry's chunked upload where a registry refuses
// that. It is internal to pkg/export: the export flow (push.go) is its only
// caller.
package registry
