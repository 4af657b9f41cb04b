package export

// Hostile input: sources, -append directories, -oci-layout and -report paths
// that try to make export-step read or write outside the directory it was
// given. Each case fails if the guarantee breaks; docs/reliability.md
// ("Bad and hostile input") lists them.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
)

// snapshot records every file under dir: its content, or "-> target" for a
// symlink, or "dir" (and mode) for a directory. Comparing two snapshots
// shows whether anything under dir was written.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case d.IsDir():
			out[rel] = "dir " + fi.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%s %x", fi.Mode(), b)
		}
		return nil
	})
	assert.NilError(t, err)
	return out
}

// assertOneLine checks the error contract: one line, naming what is at fault.
func assertOneLine(t *testing.T, err error, names ...string) {
	t.Helper()
	assert.Assert(t, err != nil)
	assert.Check(t, !strings.ContainsAny(err.Error(), "\r\n"), "error is not one line: %q", err)
	for _, n := range names {
		assert.Check(t, is.ErrorContains(err, n))
	}
}

// moveOut moves dir/rel to outside/rel and leaves a symlink in its place.
func moveOut(t *testing.T, dir, rel, outside string) string {
	t.Helper()
	from, to := filepath.Join(dir, rel), filepath.Join(outside, rel)
	assert.NilError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	assert.NilError(t, os.Rename(from, to))
	assert.NilError(t, os.Symlink(to, from))
	return to
}

func blobPath(dir string, h v1.Hash) string {
	return filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
}

// TestOCILayoutSourceStaysInside: an OCI layout source whose index.json,
// manifests or blobs lead outside the layout directory is refused (exit 2,
// one line naming the file) before anything is read from outside; the
// layout directory itself may be a symlink.
func TestOCILayoutSourceStaysInside(t *testing.T) {
	ctx := context.Background()
	img := srcImage(t, "linux/amd64")
	m, err := img.Manifest()
	assert.NilError(t, err)
	imgDigest := srcDigest(t, img)
	rawManifest, err := img.RawManifest()
	assert.NilError(t, err)

	// withIndex replaces index.json with one descriptor of raw manifest.
	withManifest := func(t *testing.T, dir string, raw []byte, size int64) {
		h, n, err := v1.SHA256(bytes.NewReader(raw))
		assert.NilError(t, err)
		if size == 0 {
			size = n
		}
		srcWriteFile(t, blobPath(dir, h), string(raw))
		srcWriteFile(t, filepath.Join(dir, "index.json"), fmt.Sprintf(
			`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":%d,"digest":%q}]}`, size, h))
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
		want  string
	}{
		{"blobs/ is a symlink to a copy outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "blobs", outside)
		}, "blobs is not a directory (symlink)"},
		{"blobs/sha256/ is a symlink to a copy outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "blobs/sha256", outside)
		}, "sha256 is not a directory (symlink)"},
		{"the manifest blob is a symlink outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "blobs/sha256/"+imgDigest.Hex, outside)
		}, "is not a regular file (symlink)"},
		{"the manifest blob is a symlink to /dev/zero", func(t *testing.T, dir, _ string) {
			p := blobPath(dir, imgDigest)
			assert.NilError(t, os.Remove(p))
			assert.NilError(t, os.Symlink("/dev/zero", p))
		}, "is not a regular file (symlink)"},
		{"the config blob is a symlink outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "blobs/sha256/"+m.Config.Digest.Hex, outside)
		}, "config: blob " + m.Config.Digest.String()},
		{"a layer blob is a symlink outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "blobs/sha256/"+m.Layers[0].Digest.Hex, outside)
		}, "layer 0: blob " + m.Layers[0].Digest.String()},
		{"index.json is a symlink outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "index.json", outside)
		}, "index.json is not a regular file"},
		{"oci-layout is a symlink outside", func(t *testing.T, dir, outside string) {
			moveOut(t, dir, "oci-layout", outside)
		}, "oci-layout is not a regular file"},
		{"index.json digest climbing out", func(t *testing.T, dir, _ string) {
			srcWriteFile(t, filepath.Join(dir, "index.json"),
				`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:../../../../etc/passwd"}]}`)
		}, "index.json: invalid JSON"},
		{"index.json digest with an absolute path", func(t *testing.T, dir, _ string) {
			srcWriteFile(t, filepath.Join(dir, "index.json"),
				`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:/etc/passwd"}]}`)
		}, "index.json: invalid JSON"},
		{"index.json digest with an unknown algorithm", func(t *testing.T, dir, _ string) {
			srcWriteFile(t, filepath.Join(dir, "index.json"),
				`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"..:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}`)
		}, "index.json: invalid JSON"},
		{"a layer digest climbing out, in the manifest", func(t *testing.T, dir, _ string) {
			raw := bytes.Replace(rawManifest, []byte(m.Layers[0].Digest.String()), []byte("sha256:../../../../../../../etc/passwd"), 1)
			withManifest(t, dir, raw, 0)
		}, "manifest sha256:"},
		{"a config digest with an unknown algorithm, in the manifest", func(t *testing.T, dir, _ string) {
			raw := bytes.Replace(rawManifest, []byte(m.Config.Digest.String()), []byte("md5:"+m.Config.Digest.Hex), 1)
			withManifest(t, dir, raw, 0)
		}, "manifest sha256:"},
		{"a manifest blob larger than 16 MiB (sparse)", func(t *testing.T, dir, _ string) {
			withManifest(t, dir, rawManifest, 17<<20)
			h, _, err := v1.SHA256(bytes.NewReader(rawManifest))
			assert.NilError(t, err)
			assert.NilError(t, os.Truncate(blobPath(dir, h), 17<<20))
		}, "more than the 16777216 allowed for a manifest or config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := srcLayout(t, func(p layout.Path) { assert.NilError(t, p.AppendImage(img)) })
			outside := t.TempDir()
			tc.setup(t, dir, outside)
			before := snapshot(t, outside)

			_, err := Open(ctx, Source{Transport: TransportOCI, Path: dir})
			assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
			assertOneLine(t, err, dir, tc.want)
			assert.DeepEqual(t, snapshot(t, outside), before)
		})
	}

	t.Run("the layout directory itself is a symlink: followed", func(t *testing.T) {
		dir := srcLayout(t, func(p layout.Path) { assert.NilError(t, p.AppendImage(img)) })
		link := filepath.Join(t.TempDir(), "link")
		assert.NilError(t, os.Symlink(dir, link))
		got, err := Open(ctx, Source{Transport: TransportOCI, Path: link})
		assert.NilError(t, err)
		assert.Equal(t, srcDigest(t, got), imgDigest)
	})
}

// TestOCILayoutDestinationStaysInside: -oci-layout DIR whose files are
// symlinks leading outside is refused before anything is pushed, and
// nothing outside DIR is written; DIR itself, or a parent, may be a symlink
// (followed like any path: the layout is written where it leads).
func TestOCILayoutDestinationStaysInside(t *testing.T) {
	ctx := context.Background()
	img := seededImage(t, 41, 300, 2)
	m, err := img.Manifest()
	assert.NilError(t, err)
	old := seededImage(t, 42, 300, 1)

	// existing makes dir an OCI layout holding old, tagged "old".
	existing := func(t *testing.T, dir string) {
		p, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendImage(old, layout.WithAnnotations(map[string]string{ourlayout.AnnotationRefName: "old"})))
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
		want  string
	}{
		{"blobs/ is a symlink to a directory outside", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			moveOut(t, dir, "blobs", outside)
		}, "blobs is not a directory (symlink)"},
		{"blobs/sha256/ is a symlink to a directory outside", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			moveOut(t, dir, "blobs/sha256", outside)
		}, "sha256 is not a directory (symlink)"},
		{"a dangling symlink named as the image's config blob", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			// go-containerregistry writes a config or manifest blob with
			// os.Create, which follows the link.
			assert.NilError(t, os.Symlink(filepath.Join(outside, "written-through"), blobPath(dir, m.Config.Digest)))
		}, "is not a regular file (symlink)"},
		{"a dangling symlink named as the image's manifest blob", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			assert.NilError(t, os.Symlink(filepath.Join(outside, "written-through"), blobPath(dir, srcDigest(t, img))))
		}, "is not a regular file (symlink)"},
		{"a dangling symlink named as one of the image's layers", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			assert.NilError(t, os.Symlink(filepath.Join(outside, "written-through"), blobPath(dir, m.Layers[0].Digest)))
		}, "is not a regular file (symlink)"},
		{"a blob is a symlink to a file outside", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			om, err := old.Manifest()
			assert.NilError(t, err)
			moveOut(t, dir, "blobs/sha256/"+om.Layers[0].Digest.Hex, outside)
		}, "is not a regular file (symlink)"},
		{"index.json is a symlink to another layout's", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			moveOut(t, dir, "index.json", outside)
		}, "index.json is not a regular file"},
		{"index.json is a dangling symlink", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			assert.NilError(t, os.Remove(filepath.Join(dir, "index.json")))
			assert.NilError(t, os.Symlink(filepath.Join(outside, "index.json"), filepath.Join(dir, "index.json")))
		}, "index.json is not a regular file"},
		{"oci-layout is a symlink", func(t *testing.T, dir, outside string) {
			existing(t, dir)
			moveOut(t, dir, "oci-layout", outside)
		}, "oci-layout is not a regular file"},
		{"index.json digest climbing out", func(t *testing.T, dir, _ string) {
			existing(t, dir)
			srcWriteFile(t, filepath.Join(dir, "index.json"),
				`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:../../x"}]}`)
		}, "index.json: invalid JSON"},
		{"index.json larger than 16 MiB (sparse)", func(t *testing.T, dir, _ string) {
			existing(t, dir)
			assert.NilError(t, os.Truncate(filepath.Join(dir, "index.json"), 17<<20))
		}, "more than the 16777216 allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			dir := filepath.Join(t.TempDir(), "layout")
			outside := t.TempDir()
			tc.setup(t, dir, outside)
			before := snapshot(t, outside)

			opts := testOptions(t, img, reg.ref("app:1"))
			opts.OCILayout = dir
			_, err := Run(ctx, opts)
			assert.Check(t, is.DeepEqual(snapshot(t, outside), before), "written outside the layout")
			assert.Check(t, is.Len(reg.requests(), 0), "something was sent to the registry")
			assert.Check(t, !fileExists(opts.ReportPath))
			assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
			assertOneLine(t, err, "-oci-layout", dir, tc.want)
		})
	}

	followed := []struct {
		name string
		// setup returns the -oci-layout value and the real directory it leads to.
		setup func(t *testing.T) (flag, real string)
	}{
		{"the layout directory is a symlink to an existing layout", func(t *testing.T) (string, string) {
			real := filepath.Join(t.TempDir(), "real")
			existing(t, real)
			link := filepath.Join(t.TempDir(), "link")
			assert.NilError(t, os.Symlink(real, link))
			return link, real
		}},
		{"the layout directory is a symlink to an empty directory", func(t *testing.T) (string, string) {
			real := t.TempDir()
			link := filepath.Join(t.TempDir(), "link")
			assert.NilError(t, os.Symlink(real, link))
			return link, real
		}},
		{"a parent directory is a symlink", func(t *testing.T) (string, string) {
			parent := t.TempDir()
			link := filepath.Join(t.TempDir(), "link")
			assert.NilError(t, os.Symlink(parent, link))
			return filepath.Join(link, "layout"), filepath.Join(parent, "layout")
		}},
	}
	for _, tc := range followed {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			flag, real := tc.setup(t)
			opts := testOptions(t, img, reg.ref("app:1"))
			opts.OCILayout = flag
			rep, err := Run(ctx, opts)
			assert.NilError(t, err)
			idx, err := layout.ImageIndexFromPath(real)
			assert.NilError(t, err)
			im, err := idx.IndexManifest()
			assert.NilError(t, err)
			var found bool
			for _, d := range im.Manifests {
				found = found || (d.Annotations[ourlayout.AnnotationRefName] == "1" && d.Digest.String() == rep.Image.Digest)
			}
			assert.Check(t, found, "index.json of %s does not list the image: %+v", real, im.Manifests)
			// Every blob landed in the real directory, as a regular file.
			for _, l := range m.Layers {
				fi, err := os.Lstat(blobPath(real, l.Digest))
				assert.NilError(t, err)
				assert.Check(t, fi.Mode().IsRegular())
			}
		})
	}
}

// tarEntry is one entry of a hand-made tar: a regular file, or a link when
// typ is tar.TypeSymlink or tar.TypeLink.
type tarEntry struct {
	name, body, link string
	typ              byte
}

func writeHostileTar(t *testing.T, p string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.typ != 0 {
			h = &tar.Header{Name: e.name, Mode: 0o777, Typeflag: e.typ, Linkname: e.link}
		}
		assert.NilError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			assert.NilError(t, err)
		}
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, os.WriteFile(p, buf.Bytes(), 0o644))
}

// TestDockerArchiveStaysInside: a docker-save tarball whose manifest.json or
// entries name paths outside the archive is refused (exit 2, one line naming
// the file and the entry). Nothing of an archive is ever extracted to disk;
// these are refused so that no name resolves to something the archive does
// not hold.
func TestDockerArchiveStaysInside(t *testing.T) {
	ctx := context.Background()
	manifest := func(config string, layers ...string) tarEntry {
		b, err := json.Marshal([]map[string]any{{"Config": config, "RepoTags": []string{"app:1"}, "Layers": layers}})
		assert.NilError(t, err)
		return tarEntry{name: "manifest.json", body: string(b)}
	}
	cfg := tarEntry{name: "config.json", body: `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`}
	tests := []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"manifest.json names ../../x", []tarEntry{cfg, manifest("config.json", "../../x")}, `names "../../x", outside the archive`},
		{"manifest.json names a/../../x", []tarEntry{cfg, manifest("config.json", "a/../../x")}, `names "a/../../x", outside the archive`},
		{"manifest.json names an absolute layer", []tarEntry{cfg, manifest("config.json", "/etc/passwd")}, `names "/etc/passwd", outside the archive`},
		{"manifest.json names an absolute config", []tarEntry{manifest("/etc/passwd")}, `names "/etc/passwd", outside the archive`},
		{"manifest.json names a Windows path", []tarEntry{cfg, manifest("config.json", `C:\Windows\x`)}, `outside the archive`},
		{"manifest.json names an empty config", []tarEntry{manifest("")}, `names "", outside the archive`},
		{"an entry named ../x", []tarEntry{cfg, {name: "../x", body: "x"}, manifest("config.json")}, `tar entry "../x" escapes the archive`},
		{"an absolute entry", []tarEntry{cfg, {name: "/tmp/x", body: "x"}, manifest("config.json")}, `tar entry "/tmp/x" escapes the archive`},
		{"a symlink to an absolute path", []tarEntry{{name: "config.json", typ: tar.TypeSymlink, link: "/etc/passwd"}, manifest("config.json")}, `links outside the archive (/etc/passwd)`},
		{"a symlink climbing out", []tarEntry{{name: "d/config.json", typ: tar.TypeSymlink, link: "../../x"}, manifest("d/config.json")}, `links outside the archive (../../x)`},
		{"a hard link climbing out", []tarEntry{{name: "config.json", typ: tar.TypeLink, link: "../x"}, manifest("config.json")}, `links outside the archive (../x)`},
		{"a symlink cycle", []tarEntry{{name: "a", typ: tar.TypeSymlink, link: "b"}, {name: "b", typ: tar.TypeSymlink, link: "a"}, manifest("a")}, "link cycle"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), fmt.Sprintf("case%d.tar", i))
			writeHostileTar(t, p, tc.entries)
			_, err := Open(ctx, Source{Transport: TransportDockerArchive, Path: p})
			assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
			assertOneLine(t, err, p, tc.want)
		})
	}
}

// TestAppendSymlinksStoredNotFollowed: symlinks inside an -append directory
// are stored in the layer as symlinks with their target as written, never
// followed: nothing they point at is read, and a symlink to a directory is
// not descended into.
func TestAppendSymlinksStoredNotFollowed(t *testing.T) {
	const secret = "SECRET-OUTSIDE-THE-APPEND-DIRECTORY"
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	srcWriteFile(t, filepath.Join(outside, "secret.txt"), secret)
	srcWriteFile(t, filepath.Join(outside, "sub", "deep.txt"), secret)

	tests := []struct {
		name, link, target string
	}{
		{"absolute, to a file outside", "abs-file", filepath.Join(outside, "secret.txt")},
		{"relative, climbing out", "rel-file", "../outside/secret.txt"},
		{"to a directory outside", "dir-link", outside},
		{"relative, to a directory outside", "rel-dir", "../outside/sub"},
		{"to /etc/shadow", "shadow", "/etc/shadow"},
		{"to /dev/zero", "zero", "/dev/zero"},
		{"to the root", "root", "/"},
		{"dangling", "dangling", "../outside/nothing-here"},
		{"to itself", "loop", "loop"},
		{"nested, climbing out", "a/b/up", "../../../outside"},
	}
	dir := filepath.Join(parent, "app")
	srcWriteFile(t, filepath.Join(dir, "inside.txt"), "inside")
	for _, tc := range tests {
		p := filepath.Join(dir, filepath.FromSlash(tc.link))
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.Symlink(tc.target, p))
	}
	before := snapshot(t, outside)

	for _, dest := range []string{"", "/opt/app"} {
		dl, err := scanDir(AppendSpec{Dir: dir, Dest: dest}, time.Unix(0, 0))
		assert.NilError(t, err)
		l, err := dl.layer(context.Background())
		assert.NilError(t, err)
		entries := layerEntries(t, l)
		prefix := strings.TrimPrefix(dest+"/", "/")

		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s (dest %q)", tc.name, dest), func(t *testing.T) {
				h, ok := entries[prefix+tc.link]
				assert.Assert(t, ok, "no entry %s", prefix+tc.link)
				assert.Check(t, is.Equal(h.Typeflag, byte(tar.TypeSymlink)))
				assert.Check(t, is.Equal(h.Linkname, tc.target))
				assert.Check(t, is.Equal(h.Size, int64(0)))
				for n := range entries {
					assert.Check(t, !strings.HasPrefix(n, prefix+tc.link+"/"), "descended into symlink %s: %s", tc.link, n)
				}
			})
		}
		// Only the one regular file inside was read.
		var regular []string
		for n, h := range entries {
			if h.Typeflag == tar.TypeReg {
				regular = append(regular, n)
			}
		}
		assert.Check(t, is.DeepEqual(regular, []string{prefix + "inside.txt"}))
		raw := readLayer(t, l.Uncompressed)
		assert.Check(t, !bytes.Contains(raw, []byte(secret)), "the layer holds a file from outside the directory")
	}
	assert.DeepEqual(t, snapshot(t, outside), before)
}

// layerEntries reads a layer's tar headers by name.
func layerEntries(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	assert.NilError(t, err)
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		assert.NilError(t, err)
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

// readLayer reads all that open (a layer's Compressed or Uncompressed) gives.
func readLayer(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	assert.NilError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	assert.NilError(t, err)
	return b
}

// TestReportPathSymlinks: -report through a symlink. A symlinked parent
// directory is followed like any path. A -report that is itself a symlink is
// never written through: the stale-report removal removes the link, and the
// new report replaces it (rename) as a regular file; the link's target is
// untouched. A -report that leads to a directory is refused.
func TestReportPathSymlinks(t *testing.T) {
	ctx := context.Background()
	img := seededImage(t, 43, 200, 1)
	const outsideContent = "not a report: must stay as it is\n"

	tests := []struct {
		name string
		// setup returns the -report value and the file the report must end up in.
		setup func(t *testing.T, work, outside string) (flag, lands string)
	}{
		{"-report is a symlink to a file outside", func(t *testing.T, work, outside string) (string, string) {
			srcWriteFile(t, filepath.Join(outside, "target"), outsideContent)
			p := filepath.Join(work, "report.toml")
			assert.NilError(t, os.Symlink(filepath.Join(outside, "target"), p))
			return p, p
		}},
		{"-report is a dangling symlink", func(t *testing.T, work, outside string) (string, string) {
			p := filepath.Join(work, "report.toml")
			assert.NilError(t, os.Symlink(filepath.Join(outside, "would-be-created"), p))
			return p, p
		}},
		{"-report is a relative symlink climbing out", func(t *testing.T, work, outside string) (string, string) {
			srcWriteFile(t, filepath.Join(outside, "target"), outsideContent)
			p := filepath.Join(work, "report.toml")
			rel, err := filepath.Rel(work, filepath.Join(outside, "target"))
			assert.NilError(t, err)
			assert.NilError(t, os.Symlink(rel, p))
			return p, p
		}},
		{"a parent directory is a symlink: followed", func(t *testing.T, work, _ string) (string, string) {
			real := filepath.Join(work, "real")
			assert.NilError(t, os.Mkdir(real, 0o755))
			link := filepath.Join(t.TempDir(), "link")
			assert.NilError(t, os.Symlink(real, link))
			return filepath.Join(link, "report.toml"), filepath.Join(real, "report.toml")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, nil)
			work, outside := t.TempDir(), t.TempDir()
			flag, lands := tc.setup(t, work, outside)
			before := snapshot(t, outside)
			opts := testOptions(t, img, reg.ref("app:1"))
			opts.ReportPath = flag
			rep, err := Run(ctx, opts)
			assert.NilError(t, err)
			fi, err := os.Lstat(lands)
			assert.NilError(t, err)
			assert.Check(t, fi.Mode().IsRegular(), "%s is %s, want a regular file", lands, fi.Mode())
			b, err := os.ReadFile(lands)
			assert.NilError(t, err)
			assert.Check(t, is.Contains(string(b), rep.Image.Digest))
			assert.DeepEqual(t, snapshot(t, outside), before)
		})
	}

	t.Run("a failed export removes the symlink, not its target", func(t *testing.T) {
		reg := newTestRegistry(t, nil)
		tag := reg.ref("app:1")
		reg.srv.Close()
		work, outside := t.TempDir(), t.TempDir()
		srcWriteFile(t, filepath.Join(outside, "target"), outsideContent)
		p := filepath.Join(work, "report.toml")
		assert.NilError(t, os.Symlink(filepath.Join(outside, "target"), p))
		before := snapshot(t, outside)
		opts := testOptions(t, img, tag)
		opts.ReportPath = p
		_, err := Run(ctx, opts)
		assert.Assert(t, err != nil)
		_, err = os.Lstat(p)
		assert.Check(t, errors.Is(err, fs.ErrNotExist), "the stale report (a symlink) is still there")
		assert.DeepEqual(t, snapshot(t, outside), before)
	})

	t.Run("-report is a symlink to a directory: refused", func(t *testing.T) {
		reg := newTestRegistry(t, nil)
		work, outside := t.TempDir(), t.TempDir()
		p := filepath.Join(work, "report.toml")
		assert.NilError(t, os.Symlink(outside, p))
		opts := testOptions(t, img, reg.ref("app:1"))
		opts.ReportPath = p
		_, err := Run(ctx, opts)
		assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
		assertOneLine(t, err, "-report "+p, "is a directory")
		assert.Check(t, is.Len(reg.requests(), 0))
		assert.DeepEqual(t, snapshot(t, outside), map[string]string{".": "dir " + mustMode(t, outside)})
	})
}

func mustMode(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Stat(p)
	assert.NilError(t, err)
	return fi.Mode().String()
}
