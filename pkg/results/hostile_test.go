package results

// Hostile input for report2results: outputs that are symlinks leading
// outside, a report with 5,000 tags, and fuzzed references. See
// docs/reliability.md, "Bad and hostile input".

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
)

// TestSymlinkedOutputsNotWrittenThrough: a result file, the termination
// message, or the layout's index.json / oci-layout that is a symlink to a
// file outside is replaced by a regular file (rename), never written
// through; the file outside keeps its content. The directories given
// (-results-dir, -oci-layout) may themselves be symlinks: followed.
func TestSymlinkedOutputsNotWrittenThrough(t *testing.T) {
	const outsideContent = "outside: must not change"
	tests := []struct {
		name string
		link func(o Options) string // the output path made a symlink
	}{
		{"a result file", func(o Options) string { return filepath.Join(o.ResultsDir, "IMAGE_DIGEST") }},
		{"the termination message", func(o Options) string { return o.TerminationMessage }},
		{"the layout's index.json", func(o Options) string { return filepath.Join(o.OCILayout, "index.json") }},
		{"the layout's oci-layout", func(o Options) string { return filepath.Join(o.OCILayout, "oci-layout") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work, outside := t.TempDir(), t.TempDir()
			o := Options{
				ReportPath:         "report.toml",
				ResultsDir:         filepath.Join(work, "results"),
				Kinds:              DefaultKinds,
				OCILayout:          filepath.Join(work, "layout"),
				TerminationMessage: filepath.Join(work, "termination-log"),
				Offline:            true,
			}
			mkdir(t, o.ResultsDir)
			mkdir(t, o.OCILayout)
			target := filepath.Join(outside, "target")
			assert.NilError(t, os.WriteFile(target, []byte(outsideContent), 0o644))
			p := tc.link(o)
			assert.NilError(t, os.Symlink(target, p))

			assert.NilError(t, runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler)))
			b, err := os.ReadFile(target)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(string(b), outsideContent), "written through the symlink")
			fi, err := os.Lstat(p)
			assert.NilError(t, err)
			assert.Check(t, fi.Mode().IsRegular(), "%s is %s", p, fi.Mode())
		})
	}

	t.Run("-results-dir and -oci-layout are symlinks to directories: followed", func(t *testing.T) {
		real, links := t.TempDir(), t.TempDir()
		mkdir(t, filepath.Join(real, "results"))
		o := Options{
			ReportPath: "report.toml",
			ResultsDir: filepath.Join(links, "results"),
			Kinds:      DefaultKinds,
			OCILayout:  filepath.Join(links, "layout"),
			Offline:    true,
		}
		assert.NilError(t, os.Symlink(filepath.Join(real, "results"), o.ResultsDir))
		mkdir(t, filepath.Join(real, "layout"))
		assert.NilError(t, os.Symlink(filepath.Join(real, "layout"), o.OCILayout))
		assert.NilError(t, runReport(context.Background(), o, registryReport(), slog.New(slog.DiscardHandler)))
		b, err := os.ReadFile(filepath.Join(real, "results", "IMAGE_DIGEST"))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(b), digest))
		_, err = os.Stat(filepath.Join(real, "layout", "index.json"))
		assert.Check(t, err)
	})
}

// fiveThousandTags is a registry report with 5,000 tags (about 300 KB).
func fiveThousandTags() *report.Report {
	r := registryReport()
	r.Image.Tags = make([]string, 5000)
	for i := range r.Image.Tags {
		r.Image.Tags[i] = fmt.Sprintf("registry.example.com/some-team/some-application:build-%06d", i)
	}
	return r
}

// TestFiveThousandTags: results that fit Tekton's budget are written
// (IMAGE_URL is only the first tag); IMAGES and the termination message of
// 5,000 tags do not fit and fail with one line naming the 4096-byte budget,
// with nothing written; the OCI layout, which has no budget, lists every
// tag.
func TestFiveThousandTags(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	r := fiveThousandTags()

	t.Run("IMAGE_DIGEST, IMAGE_URL, IMAGE_REF and the OCI layout fit", func(t *testing.T) {
		o := testOptions(t, ImageDigest, ImageURL, ImageRef)
		mkdir(t, o.ResultsDir)
		o.OCILayout = filepath.Join(t.TempDir(), "layout")
		o.Offline = true
		assert.NilError(t, runReport(ctx, o, r, log))
		got := readDir(t, o.ResultsDir)
		assert.DeepEqual(t, got, map[string]string{
			"IMAGE_DIGEST": digest,
			"IMAGE_URL":    r.Image.Tags[0],
			"IMAGE_REF":    r.Image.Tags[0] + "@" + digest,
		})
		raw, err := os.ReadFile(filepath.Join(o.OCILayout, "index.json"))
		assert.NilError(t, err)
		var im v1.IndexManifest
		assert.NilError(t, json.Unmarshal(raw, &im))
		assert.Equal(t, len(im.Manifests), 5000)
		assert.Equal(t, im.Manifests[4999].Annotations[layout.AnnotationImageName], r.Image.Tags[4999])
	})

	for _, tc := range []struct {
		name    string
		kinds   []Kind
		message bool
		want    string
	}{
		{"IMAGES", []Kind{ImageDigest, ImageURL, Images}, false, "bytes of Tekton's 4096-byte termination message budget"},
		{"-termination-message", DefaultKinds, true, "over the 4096-byte termination message budget"},
	} {
		t.Run(tc.name+" does not fit: one line naming the budget, nothing written", func(t *testing.T) {
			o := testOptions(t, tc.kinds...)
			mkdir(t, o.ResultsDir)
			o.OCILayout = filepath.Join(t.TempDir(), "layout")
			o.Offline = true
			if tc.message {
				o.TerminationMessage = filepath.Join(t.TempDir(), "termination-log")
			}
			err := runReport(ctx, o, r, log)
			assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
			assert.ErrorContains(t, err, tc.want)
			assert.Check(t, !strings.ContainsAny(err.Error(), "\r\n"), "not one line: %q", err)
			assert.Check(t, len(err.Error()) < 1000, "error of %d bytes", len(err.Error()))
			assert.Check(t, is.Len(readDir(t, o.ResultsDir), 0))
			_, err = os.Stat(o.OCILayout)
			assert.Check(t, errors.Is(err, fs.ErrNotExist), "the layout was written")
			if tc.message {
				_, err = os.Stat(o.TerminationMessage)
				assert.Check(t, errors.Is(err, fs.ErrNotExist), "the termination message was written")
			}
		})
	}

	t.Run("read from a file", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("[image]\ntags = [")
		for i, tag := range r.Image.Tags {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", tag)
		}
		fmt.Fprintf(&b, "]\ndigest = %q\nmanifest_size = 1234\nmedia_type = %q\n", digest, indexType)
		o := testOptions(t, Images)
		mkdir(t, o.ResultsDir)
		o.ReportPath = filepath.Join(t.TempDir(), "report.toml")
		writeReport(t, o.ReportPath, b.String())
		err := Run(ctx, o)
		assert.Check(t, errors.Is(err, badinput.Err), "not badinput.Err: %v", err)
		assert.ErrorContains(t, err, "4096-byte termination message budget")
		assert.Check(t, is.Len(readDir(t, o.ResultsDir), 0))
	})
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		assert.NilError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

// FuzzResultReferences: the references report2results takes from a report
// (the tags) and derives results from (IMAGE_URL, IMAGE_REF, IMAGES, the
// layout's ref.name). Compute never panics; it refuses a report with one
// line naming the report, wrapping badinput.Err; what it accepts gives
// results that are references again: IMAGE_URL is the first tag without a
// digest and parses, IMAGE_REF parses as IMAGE_URL at the report's digest,
// IMAGES has one line per distinct tag, each at the digest, and none holds
// a newline or white space that would split a line.
func FuzzResultReferences(f *testing.F) {
	for _, s := range []string{
		"registry.example.com/team/app:latest", "app", "localhost:5000/a/b:c", "[::1]:5000/app:v1",
		"app@" + digest, "app:1@" + digest, "app:1@" + other, "reg.example.com:5000/app",
		"a:b:c", "UPPER/app", "app:", "app:" + strings.Repeat("t", 128), "a/b/c/d/e/f:1",
		"index.docker.io/library/busybox:1", "app:1\nevil:2", "app :1", "app@sha256:zz",
	} {
		f.Add(s, "registry.example.com/team/app:2")
	}
	kinds := []Kind{ImageDigest, ImageURL, Images, ImageRef}
	f.Fuzz(func(t *testing.T, first, second string) {
		r := &report.Report{Image: report.Image{Tags: []string{first, second}, Digest: digest, ManifestSize: 10, MediaType: indexType}}
		res, err := Compute(r, "fuzz.toml", kinds, "")
		if err != nil {
			if !errors.Is(err, badinput.Err) {
				t.Fatalf("error does not wrap badinput.Err: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), "fuzz.toml") {
				t.Fatalf("error is not one line naming the report: %q", err)
			}
			return
		}
		got := map[Kind]string{}
		for i, k := range kinds {
			got[k] = res[i].Value
			if strings.ContainsAny(res[i].Value, " \t\r") {
				t.Fatalf("%s = %q holds white space", k, res[i].Value)
			}
		}
		url := got[ImageURL]
		if strings.Contains(url, "@") || strings.Contains(url, "\n") {
			t.Fatalf("IMAGE_URL %q carries a digest or a newline", url)
		}
		if _, err := name.ParseReference(url); err != nil {
			t.Fatalf("IMAGE_URL %q (from %q) does not parse: %v", url, first, err)
		}
		ref, err := name.NewDigest(got[ImageRef])
		if err != nil {
			t.Fatalf("IMAGE_REF %q does not parse as a digest reference: %v", got[ImageRef], err)
		}
		if ref.DigestStr() != digest || got[ImageRef] != url+"@"+digest {
			t.Fatalf("IMAGE_REF %q is not IMAGE_URL %q at %s", got[ImageRef], url, digest)
		}
		lines := strings.Split(got[Images], "\n")
		want := 2
		if strings.TrimSuffix(first, "@"+digest) == strings.TrimSuffix(second, "@"+digest) {
			want = 1
		}
		if len(lines) != want {
			t.Fatalf("IMAGES has %d lines for tags %q, %q: %q", len(lines), first, second, got[Images])
		}
		for _, l := range lines {
			d, err := name.NewDigest(l)
			if err != nil || d.DigestStr() != digest {
				t.Fatalf("IMAGES line %q is not a reference at %s: %v", l, digest, err)
			}
		}
		// The layout describes the same tags: ref.name is the tag written.
		idx, err := layout.Index(r.Image.Tags, v1.Descriptor{MediaType: indexType, Size: 10, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(digest, "sha256:")}})
		if err != nil {
			t.Fatalf("layout.Index refused tags Compute accepted: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range im.Manifests {
			full := d.Annotations[layout.AnnotationImageName]
			tag := d.Annotations[layout.AnnotationRefName]
			if tag == "" {
				continue
			}
			pr, err := name.ParseReference(full)
			if err != nil {
				t.Fatalf("annotation %q does not parse: %v", full, err)
			}
			var tagged name.Tag
			switch r := pr.(type) {
			case name.Tag:
				tagged = r
			case name.Digest:
				tagged, err = name.NewTag(strings.TrimSuffix(full, "@"+r.DigestStr()))
				if err != nil {
					t.Fatalf("%q: %v", full, err)
				}
			}
			if tagged.TagStr() != tag {
				t.Fatalf("ref.name %q is not the tag of %q (%q)", tag, full, tagged.TagStr())
			}
		}
	})
}
