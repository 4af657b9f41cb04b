package export

// Opening a docker-archive tarball (docker save, docker-archive:FILE[:REF]),
// scanned once, its paths kept inside it.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/exportreport/exportreport/pkg/badinput"
)

func openArchive(src Source, o sourceOptions) (Artifact, error) {
	p := src.Path
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badinput.Errorf("%s does not exist", p)
	}
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, badinput.Errorf("%s is not a regular file (a docker-archive is a tarball)", p)
	}
	manifest, entries, err := scanArchive(p)
	if err != nil {
		return nil, err
	}
	var tag *name.Tag
	if src.Ref != "" {
		t, err := name.NewTag(src.Ref)
		if err != nil {
			return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
		}
		tag = &t
		if !archiveHasTag(manifest, t) {
			return nil, badinput.Errorf("%s holds no image tagged %s (tags: %s)", p, src.Ref, archiveTags(manifest))
		}
	} else if len(manifest) != 1 {
		return nil, badinput.Errorf("%s holds %d images; pick one with docker-archive:%s:REF (tags: %s)", p, len(manifest), p, archiveTags(manifest))
	}
	d := archiveImage(manifest, tag)
	if len(d.LayerSources) > 0 {
		// Foreign layers (Windows base images): go-containerregistry's
		// tarball image knows their descriptors.
		img, err := tarball.ImageFromPath(p, tag)
		if err != nil {
			return nil, badinput.Errorf("%s: %w", p, err)
		}
		if _, err := img.ConfigFile(); err != nil {
			return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
		}
		return img, nil
	}
	return archiveRawImage(p, d, entries, o)
}

// archiveImage is the manifest.json entry of the image tagged t (the only
// one when t is nil).
func archiveImage(m tarball.Manifest, t *name.Tag) tarball.Descriptor {
	if t == nil {
		return m[0]
	}
	for _, d := range m {
		for _, s := range d.RepoTags {
			if rt, err := name.NewTag(s); err == nil && rt.Name() == t.Name() {
				return d
			}
		}
	}
	return tarball.Descriptor{}
}

// archiveRawImage is the image d of the docker-archive at p: its layers are
// read from where they sit in the file, each compressed once if the archive
// holds it uncompressed (rawimage.go).
func archiveRawImage(p string, d tarball.Descriptor, entries archiveEntries, o sourceOptions) (Artifact, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, badinput.Errorf("%w", err)
	}
	defer f.Close()
	section := func(name string) (archiveEntry, *io.SectionReader, error) {
		e, err := entries.resolve(name)
		if err != nil {
			return e, nil, badinput.Errorf("%s: %w", p, err)
		}
		return e, io.NewSectionReader(f, e.offset, e.size), nil
	}
	ce, cr, err := section(d.Config)
	if err != nil {
		return nil, err
	}
	if ce.size > maxMetadataBytes {
		return nil, badinput.Errorf("%s: image config %s is %d bytes, more than the %d allowed", p, d.Config, ce.size, maxMetadataBytes)
	}
	rawCfg, err := io.ReadAll(cr)
	if err != nil {
		return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, badinput.Errorf("%s: image config %s: %w", p, d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, badinput.Errorf("%s: image config %s lists %d layers, manifest.json %d", p, d.Config, len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	layers := make([]*rawLayer, len(d.Layers))
	for i, lp := range d.Layers {
		e, sr, err := section(lp)
		if err != nil {
			return nil, err
		}
		var head [4]byte
		n, _ := sr.ReadAt(head[:], 0)
		layers[i] = &rawLayer{
			open: func() (io.ReadCloser, error) {
				f, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				return &readCloser{Reader: io.NewSectionReader(f, e.offset, e.size), close: f.Close}, nil
			},
			held:    sniffCompression(head[:n]),
			key:     strconv.FormatInt(e.offset, 10),
			diffID:  cfg.RootFS.DiffIDs[i],
			what:    fmt.Sprintf("%s: layer %d (%s)", p, i+1, lp),
			codec:   o.compression,
			scratch: o.scratch,
		}
	}
	return newRawImage(rawCfg, layers, o.compression, o.compressJobs)
}

// archiveEntry is where a file of a docker-archive sits in it, or what it
// links to.
type archiveEntry struct {
	offset, size int64
	link         string // cleaned path of the target of a symlink or hard link
}

// archiveEntries are the files of a docker-archive by cleaned path.
type archiveEntries map[string]archiveEntry

// resolve follows links to the regular file name refers to.
func (es archiveEntries) resolve(name string) (archiveEntry, error) {
	clean, err := resolveLinks(name, func(p string) (string, bool) {
		e, ok := es[p]
		return e.link, ok
	})
	return es[clean], err
}

// resolveLinks follows the links of an archive from name to a file: link
// says what an entry links to ("" for a file; ok false: no such entry).
func resolveLinks(name string, link func(string) (target string, ok bool)) (string, error) {
	clean, _ := archivePath(name)
	for range 16 {
		target, ok := link(clean)
		switch {
		case !ok:
			return "", fmt.Errorf("the archive holds no file %q", name)
		case target == "":
			return clean, nil
		}
		clean = target
	}
	return "", fmt.Errorf("%q: a link cycle, or more than 16 links in a row", name)
}

// linkTarget is the cleaned path, inside the archive, that the symlink or
// hard link hdr (at clean) points to; an error if it points outside.
func linkTarget(clean string, hdr *tar.Header) (string, error) {
	target, ok := archivePath(hdr.Linkname)
	if hdr.Typeflag == tar.TypeSymlink {
		target, ok = archivePath(path.Join(path.Dir(clean), hdr.Linkname))
		ok = ok && !path.IsAbs(hdr.Linkname)
	}
	if !ok {
		return "", fmt.Errorf("tar entry %q links outside the archive (%s)", hdr.Name, hdr.Linkname)
	}
	return target, nil
}

// scanArchive reads the tar headers of a docker-archive (seeking over the
// contents), refuses entries that would escape the archive and returns its
// manifest.json after checking every file it names is present, and where
// each file sits.
func scanArchive(p string) (tarball.Manifest, archiveEntries, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, badinput.Errorf("%w", err)
	}
	defer f.Close()
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		return nil, nil, badinput.Errorf("%s is gzip-compressed; a docker-archive is a plain tar (gunzip it first)", p)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(f)
	entries := archiveEntries{}
	var raw []byte
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return nil, nil, badinput.Errorf("%s is not a tar archive: %v", p, err)
			}
			return nil, nil, badinput.Errorf("%s: tar entry %d: %v", p, n+1, err)
		}
		clean, ok := archivePath(hdr.Name)
		if !ok {
			return nil, nil, badinput.Errorf("%s: tar entry %q escapes the archive", p, hdr.Name)
		}
		var e archiveEntry
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			if e.link, err = linkTarget(clean, hdr); err != nil {
				return nil, nil, badinput.Errorf("%s: %w", p, err)
			}
		case tar.TypeReg:
			// After the header, the file offset is where the content starts.
			if e.offset, err = f.Seek(0, io.SeekCurrent); err != nil {
				return nil, nil, err
			}
			e.size = hdr.Size
		}
		entries[clean] = e
		if clean == "manifest.json" && hdr.Typeflag == tar.TypeReg {
			if hdr.Size > maxMetadataBytes {
				return nil, nil, badinput.Errorf("%s: manifest.json is %d bytes, more than the %d allowed", p, hdr.Size, maxMetadataBytes)
			}
			if raw, err = io.ReadAll(tr); err != nil {
				return nil, nil, badinput.Errorf("%s: manifest.json: %v", p, err)
			}
		}
	}
	if raw == nil {
		return nil, nil, badinput.Errorf("%s is not a docker-archive (no manifest.json)", p)
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, badinput.Errorf("%s", jsonError(p+"!manifest.json", raw, err))
	}
	if len(m) == 0 {
		return nil, nil, badinput.Errorf("%s: manifest.json lists no images", p)
	}
	for i, d := range m {
		for _, f := range append([]string{d.Config}, d.Layers...) {
			clean, ok := archivePath(f)
			if !ok || f == "" {
				return nil, nil, badinput.Errorf("%s: manifest.json image %d names %q, outside the archive", p, i, f)
			}
			if _, ok := entries[clean]; !ok {
				return nil, nil, badinput.Errorf("%s: manifest.json image %d names %q, which the archive does not hold", p, i, f)
			}
		}
	}
	return m, entries, nil
}

// archivePath cleans a tar entry name; ok is false if it is absolute or
// climbs out of the archive.
func archivePath(n string) (string, bool) {
	if path.IsAbs(n) || strings.HasPrefix(n, `\`) || (len(n) > 1 && n[1] == ':') {
		return "", false
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

func archiveHasTag(m tarball.Manifest, t name.Tag) bool {
	for _, d := range m {
		for _, s := range d.RepoTags {
			if rt, err := name.NewTag(s); err == nil && rt.Name() == t.Name() {
				return true
			}
		}
	}
	return false
}

func archiveTags(m tarball.Manifest) string {
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, ", ")
}
