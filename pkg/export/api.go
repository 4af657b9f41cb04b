// Package export takes a built image from a source (OCI layout, docker-archive
// tarball, Docker daemon or registry), optionally appends layers and edits its
// config, writes it to its destinations (registry tags, the Docker daemon, an
// OCI layout) and records what it wrote in a report.
package export

import (
	"time"

	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// Artifact is what a source yields and a destination takes: a v1.Image or a
// v1.ImageIndex. Use AsImage/AsIndex or a type switch.
type Artifact interface {
	partial.Describable
	RawManifest() ([]byte, error)
}

// Transport names a kind of source.
type Transport string

const (
	TransportOCI           Transport = "oci"            // oci:DIR[:TAG|@DIGEST]
	TransportDockerArchive Transport = "docker-archive" // docker-archive:FILE[:REF]
	TransportDaemon        Transport = "docker-daemon"  // docker-daemon:REF
	TransportRemote        Transport = "docker"         // docker://REF
)

// Source is a parsed -source value.
type Source struct {
	Transport Transport
	// Path is the directory or file for oci and docker-archive.
	Path string
	// Ref is the tag (oci:DIR:TAG), digest (oci:DIR@DIGEST), or image
	// reference (docker-archive:FILE:REF, docker-daemon:REF, docker://REF).
	Ref string
}

// AppendSpec is one -append DIR[:DEST] value: the contents of Dir become one
// layer, placed under Dest (default "/") in the image filesystem.
type AppendSpec struct {
	Dir  string
	Dest string
}

// Edits are the optional changes made to every image exported. The zero
// value changes nothing; each field says what its zero value does.
type Edits struct {
	// Append adds each directory as one reproducible layer (-append), in
	// order; nil adds none.
	Append []AppendSpec
	// Labels sets config labels (-label), replacing any of the same key;
	// nil sets none.
	Labels map[string]string
	// Env sets config environment variables, KEY=VALUE (-env), replacing
	// any of the same key; nil sets none.
	Env []string
	// Entrypoint replaces the config's entrypoint (-entrypoint, see
	// ParseCommand); nil leaves it unchanged, an empty slice clears it.
	Entrypoint []string
	// Cmd replaces the config's cmd (-cmd); nil leaves it unchanged, an
	// empty slice clears it.
	Cmd []string
	// Workdir sets the working directory (-workdir); nil leaves it.
	Workdir *string
	// User sets the user (-user); nil leaves it.
	User *string
	// Created is the time for new layers' files and the config's created
	// field: SOURCE_DATE_EPOCH when set (see ParseSourceDateEpoch); the zero
	// value means the Unix epoch, so that the same inputs give the same
	// digest.
	Created time.Time
	// CacheDir, when set, caches compressed -append layers keyed by the
	// directory's content, so an unchanged directory is not compressed
	// again; "" caches nothing.
	CacheDir string
}

// Empty reports whether the edits change nothing.
func (e Edits) Empty() bool {
	return len(e.Append) == 0 && len(e.Labels) == 0 && len(e.Env) == 0 &&
		e.Entrypoint == nil && e.Cmd == nil && e.Workdir == nil && e.User == nil
}
