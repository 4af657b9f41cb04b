package results

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/pushed"
	"github.com/exportreport/exportreport/pkg/report"
)

// inputs are Options.From, or the report at ReportPath.
func (o Options) inputs() []pushed.From {
	if len(o.From) > 0 {
		return o.From
	}
	return []pushed.From{{Kind: pushed.Report, Path: o.ReportPath}}
}

// source names where the images came from, in errors and messages.
func (o Options) source() string {
	ins := o.inputs()
	if len(ins) == 1 && ins[0].Kind == pushed.Report {
		return "report " + ins[0].Path
	}
	s := make([]string, len(ins))
	for i, f := range ins {
		s[i] = "-from " + f.String()
	}
	return strings.Join(s, ", ")
}

// readImages reads every input, in order, into one list of images: a file
// input after waiting (Wait, Newer) for a fresh one, a layout directory as
// it is.
func readImages(ctx context.Context, o Options, log *slog.Logger) ([]pushed.Image, error) {
	var all []pushed.Image
	for _, in := range o.inputs() {
		var imgs []pushed.Image
		var err error
		if in.Kind == pushed.OCILayout || (in.Kind == pushed.Auto && isDir(in.Path)) {
			imgs, err = pushed.ReadLayout(in.Path, pushed.Options{Image: o.Image})
		} else {
			imgs, err = readFile(ctx, o, in, log)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, imgs...)
	}
	return all, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// readFile reads one file input, first waiting for a fresh one.
func readFile(ctx context.Context, o Options, in pushed.From, log *slog.Logger) ([]pushed.Image, error) {
	path, wait := in.Path, o.Wait
	fo := o
	fo.ReportPath = path
	f, err := newFreshness(fo)
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		if err := waitFor(ctx, path, wait, f, log); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(path); err == nil && !f.fresh(fi) {
		return nil, f.stale(path, wait)
	}
	if in.Kind == pushed.Report {
		// report.Read's size limit and error texts (a missing report is an
		// export that did not finish); a lifecycle export to an OCI layout
		// records no digest, resolve finds it.
		r, err := report.ReadWithoutDigest(path)
		if err != nil {
			if wait > 0 && errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("-wait %s: %w", wait, err)
			}
			return nil, err
		}
		return []pushed.Image{imageOf(r)}, nil
	}
	data, err := readLimited(path)
	if err != nil {
		if wait > 0 && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("-wait %s: %w", wait, err)
		}
		return nil, err
	}
	_, imgs, err := pushed.Parse(in.Kind, path, data, pushed.Options{Image: o.Image})
	return imgs, err
}

// readLimited reads a file input of at most report.MaxSize bytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, badinput.Errorf("-from %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, report.MaxSize+1))
	if err != nil {
		return nil, badinput.Errorf("-from %s: %w", path, err)
	}
	if len(data) > report.MaxSize {
		return nil, badinput.Errorf("-from %s: larger than the %d MiB limit for an input", path, report.MaxSize>>20)
	}
	return data, nil
}

// resolve completes and checks the images before anything is written: a
// lifecycle layout export's report gets its digest from the layout it
// wrote; a builder's claim (pushed.Image.Verify) is checked against the
// registry with one HEAD of its first reference (by digest when it has no
// tag), unless offline, which also gives its media type and size. A registry serving another digest than
// the builder wrote is an operation failure naming both.
func resolve(ctx context.Context, imgs []pushed.Image, o Options, log *slog.Logger) error {
	for i := range imgs {
		img := &imgs[i]
		if img.Digest == "" && img.ImageID == "" {
			d, err := layoutDigest(img.Refs, o)
			if err != nil {
				return err
			}
			img.Digest, img.MediaType, img.Size = d.Digest.String(), string(d.MediaType), d.Size
			continue
		}
		if !img.Verify || o.Offline {
			continue
		}
		// A reference without a tag (ko, crane --image-refs) names the
		// repository: ask for the digest in it (a repository alone would
		// mean its latest tag).
		ref := img.Refs[0]
		if layout.TagOf(ref) == "" {
			ref += "@" + img.Digest
		}
		got, err := layout.Head(ctx, ref, o.layoutOptions(log)...)
		if err != nil {
			return fmt.Errorf("%s: %w", o.source(), err)
		}
		if got.Digest.String() != img.Digest {
			return fmt.Errorf("%s: the builder wrote %s for %s, the registry serves %s", o.source(), img.Digest, ref, got.Digest)
		}
		if img.MediaType == "" || img.Size <= 0 {
			img.MediaType, img.Size = string(got.MediaType), got.Size
		}
	}
	return nil
}

// layoutDigest finds, for a lifecycle report of an export to an OCI layout
// (tags, no digest), the image's descriptor in the layout the lifecycle
// wrote: -oci-layout when it lists the tag, else the lifecycle's layout
// directory convention (Platform spec: <layout-dir>/<registry>/<repository>/<tag>).
func layoutDigest(refs []string, o Options) (v1.Descriptor, error) {
	tag := refs[0]
	var tried []string
	if o.OCILayout != "" {
		tried = append(tried, o.OCILayout)
		if d, ok := layout.Find(o.OCILayout, tag); ok {
			return d, nil
		}
	}
	if o.LayoutDir != "" {
		ref, err := name.NewTag(tag)
		if err != nil {
			return v1.Descriptor{}, badinput.Errorf("%s: tag %q: %v", o.source(), tag, err)
		}
		dir := filepath.Join(o.LayoutDir, ref.RegistryStr(), filepath.FromSlash(ref.RepositoryStr()), ref.TagStr())
		tried = append(tried, dir)
		if d, ok := layout.Only(dir); ok {
			return d, nil
		}
	}
	if len(tried) == 0 {
		return v1.Descriptor{}, badinput.Errorf("%s: the report has tags and neither digest nor image_id (a lifecycle export to an OCI layout): give -layout-dir (the lifecycle's, env CNB_LAYOUT_DIR) or -oci-layout naming that layout", o.source())
	}
	return v1.Descriptor{}, badinput.Errorf("%s: the report has no digest and no layout holds %s (looked in %s)", o.source(), tag, strings.Join(tried, ", "))
}

// primary is the index of the image -primary names (any of its
// references, normalised), or 0.
func primary(imgs []pushed.Image, o Options) (int, error) {
	if o.Primary == "" {
		return 0, nil
	}
	want, err := name.ParseReference(o.Primary)
	if err != nil {
		return 0, badinput.Errorf("-primary %q: %v", o.Primary, err)
	}
	for i, img := range imgs {
		for _, r := range img.Refs {
			if got, err := name.ParseReference(r); err == nil && sameName(got, want) {
				return i, nil
			}
		}
		if d, ok := want.(name.Digest); ok && d.DigestStr() == img.Digest {
			return i, nil
		}
	}
	return 0, badinput.Errorf("-primary %s: no image of %s has that reference", o.Primary, o.source())
}

// sameName: the same reference once normalised; a repository given alone
// matches any tag of it.
func sameName(got, want name.Reference) bool {
	if got.Name() == want.Name() {
		return true
	}
	_, isTag := want.(name.Tag)
	return isTag && !strings.Contains(want.String()[strings.LastIndex(want.String(), "/")+1:], ":") &&
		got.Context().Name() == want.Context().Name()
}

// imageOf is a report's image.
func imageOf(r *report.Report) pushed.Image {
	return pushed.Image{
		Refs: append([]string(nil), r.Image.Tags...), Digest: r.Image.Digest, ImageID: r.Image.ImageID,
		MediaType: r.Image.MediaType, Size: r.Image.ManifestSize,
	}
}

// asReport is img as a report (for the layout, the termination message
// and -write-report).
func asReport(img pushed.Image) *report.Report {
	return &report.Report{Image: report.Image{
		Tags: img.Refs, Digest: img.Digest, ImageID: img.ImageID, ManifestSize: img.Size, MediaType: img.MediaType,
	}}
}
