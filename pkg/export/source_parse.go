package export

// The -source grammar: ParseSource and Source.String.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// knownTransports is listed in error messages, in this order.
const knownTransports = "oci:, docker-archive:, docker-daemon:, docker://"

// transportScheme matches what looks like "name:" at the start of a -source
// value that is not a known transport.
var transportScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)

// String formats s the way ParseSource reads it back.
func (s Source) String() string {
	switch s.Transport {
	case TransportOCI:
		switch {
		case s.Ref == "":
			return "oci:" + s.Path
		case isDigest(s.Ref):
			return "oci:" + s.Path + "@" + s.Ref
		default:
			return "oci:" + s.Path + ":" + s.Ref
		}
	case TransportDockerArchive:
		if s.Ref == "" {
			return "docker-archive:" + s.Path
		}
		return "docker-archive:" + s.Path + ":" + s.Ref
	case TransportDaemon:
		return "docker-daemon:" + s.Ref
	case TransportRemote:
		return "docker://" + s.Ref
	}
	return string(s.Transport) + ":" + s.Path + s.Ref
}

func isDigest(s string) bool {
	_, err := v1.NewHash(s)
	return err == nil
}

// ParseSource parses a -source value:
//
//	oci:DIR[:TAG|@DIGEST]       an OCI image layout; TAG matches org.opencontainers.image.ref.name
//	docker-archive:FILE[:REF]   a `docker save` tarball; REF picks one image when it holds several
//	docker-daemon:REF           an image in the Docker daemon
//	docker://REF                an image or index in a registry
//	PATH                        a directory holding oci-layout (oci) or a regular file (docker-archive)
//
// DIR and FILE may contain ':'; when the value is ambiguous, the split whose
// path exists wins, else the first ':' separates path and reference (as
// skopeo does). For oci, Source.Ref holds the tag, or the digest without '@'.
// Errors wrap badinput.Err.
func ParseSource(s string) (Source, error) {
	if s == "" {
		return Source{}, badinput.Errorf("-source is empty (want %s or a path)", knownTransports)
	}
	switch {
	case strings.HasPrefix(s, "docker://"):
		ref := strings.TrimPrefix(s, "docker://")
		if err := checkReference(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
		return Source{Transport: TransportRemote, Ref: ref}, nil
	case strings.HasPrefix(s, "docker-daemon:"):
		ref := strings.TrimPrefix(s, "docker-daemon:")
		if err := checkReference(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
		return Source{Transport: TransportDaemon, Ref: ref}, nil
	case strings.HasPrefix(s, "oci:"):
		return parseOCISource(s, strings.TrimPrefix(s, "oci:"))
	case strings.HasPrefix(s, "docker-archive:"):
		return parseArchiveSource(s, strings.TrimPrefix(s, "docker-archive:"))
	}
	return detectSource(s)
}

func checkReference(ref string) error {
	if ref == "" {
		return errors.New("missing image reference")
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return nil
}

// checkOCITag accepts what an org.opencontainers.image.ref.name may hold:
// anything printable without white space.
func checkOCITag(tag string) error {
	if tag == "" {
		return errors.New("empty tag after ':'")
	}
	for _, r := range tag {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("tag %q contains white space or a control character", tag)
		}
	}
	return nil
}

func parseOCISource(s, rest string) (Source, error) {
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		if h, err := v1.NewHash(rest[i+1:]); err == nil {
			if rest[:i] == "" {
				return Source{}, badinput.Errorf("-source %q: missing layout directory before '@'", s)
			}
			return Source{Transport: TransportOCI, Path: rest[:i], Ref: h.String()}, nil
		}
	}
	p, ref, split := splitPathRef(rest, isDir)
	if p == "" {
		return Source{}, badinput.Errorf("-source %q: missing layout directory (want oci:DIR[:TAG|@DIGEST])", s)
	}
	if split {
		if err := checkOCITag(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: %w", s, err)
		}
	}
	return Source{Transport: TransportOCI, Path: p, Ref: ref}, nil
}

func parseArchiveSource(s, rest string) (Source, error) {
	p, ref, split := splitPathRef(rest, isFile)
	if split && !pathExists(p) {
		// Nothing on disk settles it: the first ':' splits, as skopeo does,
		// unless what follows is not a reference, then it is all a path.
		if _, err := name.NewTag(ref); err != nil {
			p, ref, split = rest, "", false
		}
	}
	if p == "" {
		return Source{}, badinput.Errorf("-source %q: missing file (want docker-archive:FILE[:REF])", s)
	}
	if split {
		if ref == "" {
			return Source{}, badinput.Errorf("-source %q: empty reference after ':'", s)
		}
		if _, err := name.NewTag(ref); err != nil {
			return Source{}, badinput.Errorf("-source %q: invalid image reference %q (want a tag): %w", s, ref, err)
		}
	}
	return Source{Transport: TransportDockerArchive, Path: p, Ref: ref}, nil
}

// splitPathRef splits "PATH[:REF]". The whole value wins if it exists, then
// the shortest prefix before a ':' that is usable; else the first ':'.
func splitPathRef(rest string, usable func(string) bool) (p, ref string, split bool) {
	if !strings.Contains(rest, ":") || pathExists(rest) {
		return rest, "", false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] == ':' && i > 0 && usable(rest[:i]) {
			return rest[:i], rest[i+1:], true
		}
	}
	i := strings.Index(rest, ":")
	return rest[:i], rest[i+1:], true
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// detectSource handles a value without a known transport prefix.
func detectSource(s string) (Source, error) {
	fi, err := os.Stat(s)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if m := transportScheme.FindStringSubmatch(s); m != nil {
			if m[1] == "docker" {
				return Source{}, badinput.Errorf("-source %q: the docker transport is written docker://REF", s)
			}
			return Source{}, badinput.Errorf("-source %q: unknown transport %q (want %s)", s, m[1], knownTransports)
		}
		return Source{}, badinput.Errorf("-source %q: %s does not exist", s, s)
	case err != nil:
		return Source{}, badinput.Errorf("-source %q: %w", s, err)
	case fi.IsDir():
		if _, err := os.Stat(filepath.Join(s, "oci-layout")); err != nil {
			return Source{}, badinput.Errorf("-source %q: directory %s is not an OCI image layout (no oci-layout file)", s, s)
		}
		return Source{Transport: TransportOCI, Path: s}, nil
	case fi.Mode().IsRegular():
		return Source{Transport: TransportDockerArchive, Path: s}, nil
	}
	return Source{}, badinput.Errorf("-source %q: %s is neither a directory nor a regular file (%s)", s, s, fi.Mode().Type())
}
