package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/exportreport/exportreport/pkg/badinput"
	ourlayout "github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
)

// FuzzDestinationReference: the destination IMAGE references export-step
// accepts. newPlan never panics; it refuses a reference with one line that
// wraps badinput.Err and quotes the reference; a reference it accepts is a
// tag (no digest) whose full name parses back to itself, and a report
// naming it is one report.Read and report2results accept (what export-step
// writes, the bridge can read).
func FuzzDestinationReference(f *testing.F) {
	for _, s := range []string{
		"registry.example.com/team/app:latest", "app", "localhost:5000/a/b:c", "[::1]:5000/app:v1",
		"app@" + srcTestDigest, "app:1@" + srcTestDigest, "reg.example.com:5000/app", "a:b:c",
		"UPPER/app", "app:", "app:" + strings.Repeat("t", 129), "a/b/c/d/e/f:1", "", " ", "app:1\nevil:2",
		"index.docker.io/library/busybox:1", "docker.io/busybox", "xn--bcher-kva.example/app:1", "127.0.0.1/app",
	} {
		f.Add(s)
	}
	img := srcImage(f, "")
	reportPath := filepath.Join(f.TempDir(), "report.toml")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := newPlan(Options{Artifact: img, Tags: []string{s}, Jobs: 1, Quiet: true, Stderr: io.Discard, ReportPath: reportPath})
		if err != nil {
			if !errors.Is(err, badinput.Err) {
				t.Fatalf("newPlan(%q): error does not wrap badinput.Err: %v", s, err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("newPlan(%q): error is not one line quoting the reference: %q", s, err)
			}
			return
		}
		tag := p.tags[0]
		full := tag.Name()
		if strings.Contains(full, "@") || tag.TagStr() == "" {
			t.Fatalf("accepted %q as %q: not a tag", s, full)
		}
		again, err := name.NewTag(full)
		if err != nil || again.Name() != full {
			t.Fatalf("accepted %q as %q, which parses as %q (%v)", s, full, again.Name(), err)
		}
		r := &report.Report{Image: report.Image{Tags: []string{full}, Digest: srcTestDigest, ManifestSize: 1, MediaType: "application/vnd.oci.image.manifest.v1+json"}}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted %q as %q, but a report of it is invalid: %v", s, full, err)
		}
		var buf bytes.Buffer
		if err := report.Encode(&buf, r, report.SchemaRFC); err != nil {
			t.Fatalf("report of %q: %v", full, err)
		}
		back, err := report.Parse("fuzz.toml", buf.Bytes())
		if err != nil || len(back.Image.Tags) != 1 || back.Image.Tags[0] != full {
			t.Fatalf("report of %q does not read back: %v", full, err)
		}
	})
}

// FuzzLayoutIndex: index.json of an OCI layout, read as a -source and as
// the -oci-layout the export appends to. Neither panics. As a source, Open
// either refuses it with one line wrapping badinput.Err and naming the
// layout, or returns an image or index that index.json lists (or the index
// itself). As a destination, checkOCILayoutDir either refuses it (one line
// naming the directory) or writeOCILayout then succeeds: the layout lists
// the new image under its tag and keeps every other descriptor, and no
// file appears outside the layout.
func FuzzLayoutIndex(f *testing.F) {
	img := srcImage(f, "linux/amd64")
	imgDigest := srcDigest(f, img)
	raw, err := img.RawManifest()
	if err != nil {
		f.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		f.Fatal(err)
	}
	desc := fmt.Sprintf(`{"mediaType":%q,"size":%d,"digest":%q}`, mt, len(raw), imgDigest)
	tagged := fmt.Sprintf(`{"mediaType":%q,"size":%d,"digest":%q,"annotations":{"org.opencontainers.image.ref.name":"v1"}}`, mt, len(raw), imgDigest)
	for _, s := range []string{
		`{"schemaVersion":2,"manifests":[` + desc + `]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + tagged + `,` + desc + `]}`,
		`{"schemaVersion":2,"manifests":[` + tagged + `,{"mediaType":"application/vnd.oci.image.index.v1+json","size":2,"digest":"` + srcTestDigest + `"}]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:../../../etc/passwd"}]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"text/plain","size":2,"digest":"` + srcTestDigest + `"}]}`,
		`{"schemaVersion":2,"manifests":[]}`, `{"schemaVersion":1}`, `{}`, `[]`, `null`, ``, `{"schemaVersion":2,"manifests":null}`,
		`{"schemaVersion":2,"manifests":[{"size":-1,"digest":"` + imgDigest.String() + `"}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[` + desc + `]}`,
	} {
		f.Add([]byte(s))
	}
	// The source layout: img's blobs, index.json replaced by each input.
	src := filepath.Join(f.TempDir(), "source")
	lp, err := layout.Write(src, empty.Index)
	if err != nil {
		f.Fatal(err)
	}
	if err := lp.WriteImage(img); err != nil {
		f.Fatal(err)
	}
	other := srcImage(f, "linux/arm64")
	primary, err := name.NewTag("registry.example.com/app:new")
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(src, "index.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(ctx, Source{Transport: TransportOCI, Path: src})
		if err != nil {
			if !errors.Is(err, badinput.Err) {
				t.Fatalf("Open: error does not wrap badinput.Err: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), src) {
				t.Fatalf("Open: error is not one line naming the layout: %q", err)
			}
		} else {
			got, err := a.Digest()
			if err != nil {
				t.Fatalf("Open: accepted artifact has no digest: %v", err)
			}
			h, _, _ := v1.SHA256(bytes.NewReader(data))
			if got != h && !bytes.Contains(data, []byte(got.String())) {
				t.Fatalf("Open returned %s, which index.json does not list", got)
			}
		}

		// As the destination of -oci-layout.
		parent := t.TempDir()
		dst := filepath.Join(parent, "layout")
		copyTree(t, src, dst)
		if err := checkOCILayoutDir(dst); err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), dst) {
				t.Fatalf("checkOCILayoutDir: error is not one line naming the layout: %q", err)
			}
			return
		}
		before, err := layout.ImageIndexFromPath(dst)
		if err != nil {
			t.Fatalf("checkOCILayoutDir accepted an unreadable layout: %v", err)
		}
		bm, err := before.IndexManifest()
		if err != nil {
			t.Fatalf("checkOCILayoutDir accepted an index it cannot read: %v", err)
		}
		d, err := writeOCILayout(dst, other, []name.Tag{primary})
		if err != nil {
			t.Fatalf("checkOCILayoutDir accepted a layout writeOCILayout fails on: %v\nindex.json: %s", err, data)
		}
		after, err := layout.ImageIndexFromPath(dst)
		if err != nil {
			t.Fatal(err)
		}
		am, err := after.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		// Replaced: descriptors naming primary in full, or by its bare tag
		// with no full name (pkg/layout Merge); every other one is kept.
		kept := 0
		for _, m := range bm.Manifests {
			full, hasFull := m.Annotations[ourlayout.AnnotationImageName]
			ref := m.Annotations[ourlayout.AnnotationRefName]
			if full != primary.Name() && ref != primary.Name() && (hasFull || ref != primary.TagStr()) {
				kept++
			}
		}
		if len(am.Manifests) != kept+1 {
			t.Fatalf("index.json had %d descriptors (%d not naming %s), now %d", len(bm.Manifests), kept, primary, len(am.Manifests))
		}
		found, err := partial.FindManifests(after, func(x v1.Descriptor) bool { return x.Annotations[ourlayout.AnnotationImageName] == primary.Name() })
		if err != nil || len(found) != 1 || found[0].Digest != d.Digest || found[0].Annotations[ourlayout.AnnotationRefName] != primary.TagStr() {
			t.Fatalf("layout does not list the image under %s: %v %v", primary, found, err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("files appeared beside the layout: %v", entries)
		}
	})
}

// copyTree copies a directory of regular files.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
