// Package results turns an export report (report.toml) into the files Tekton
// and its downstream consumers read: one file per result in the results
// directory (IMAGE_DIGEST, IMAGE_URL, IMAGES, IMAGE_ID, IMAGE_REF, optionally
// prefixed), a termination message for platforms without Tekton, and an OCI
// image layout (via package layout).
//
// Every input is checked and every value computed before anything is
// written; each file is written to a temp file in its own directory and
// renamed into place, so no reader ever sees half of one. Nothing is
// fsynced unless Options.Fsync: Tekton reads the results from an emptyDir
// once the container has exited, on the same machine (docs/results.md).
package results

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/atomicfile"
	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/pushed"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/pkg/termination"
)

// Options is one run of report2results.
type Options struct {
	// ReportPath is the report to read when From is empty.
	ReportPath string
	// From are the inputs (-from KIND:PATH), read in order into one list
	// of images; empty means the report at ReportPath.
	From []pushed.From
	// Image names the image of a bare digest (digest input) and the
	// repository of a layout whose ref names are tags only (-image).
	Image string
	// Primary, when set, picks among several images the one IMAGE_URL,
	// IMAGE_DIGEST, IMAGE_REF, IMAGE_ID and ARTIFACT_OUTPUTS name and
	// -write-report records (-primary REF); the first otherwise.
	Primary string
	// LayoutDir is the Buildpacks lifecycle's layout directory
	// (-layout-dir, env CNB_LAYOUT_DIR): a lifecycle report of an export
	// to an OCI layout has no digest, which its layout there holds.
	LayoutDir string
	// WriteReport, when set, is where to write the primary image as a
	// report.toml in ReportSchema (default rfc).
	WriteReport  string
	ReportSchema report.Schema
	// Wait, when positive, is how long to wait for a report at ReportPath
	// written after this run started (a sidecar or another container writes
	// it, atomically, by rename): one that was there already, a previous
	// run's on a persistent workspace, is not taken.
	Wait time.Duration
	// Newer, when set, is a file the report must be newer than (its
	// modification time), instead of "written after this run started";
	// also without Wait.
	Newer string
	// ResultsDir is where result files go (Tekton: /tekton/results).
	ResultsDir string
	// Kinds are the results to write; none writes no result files.
	Kinds []Kind
	// Prefix, when set, names results PREFIX_IMAGE_DIGEST and so on.
	Prefix string
	// OCILayout, when set, is a directory to make an OCI image layout
	// describing the report (oci-layout + index.json), merged into the
	// layout already there.
	OCILayout string
	// OCILayoutBlobs says which blobs to fetch from the registry into
	// OCILayout: BlobsNone (or "") only lists descriptors, BlobsManifest
	// also fetches the manifests and configs (no layers), so that tools can
	// inspect the image from the layout.
	OCILayoutBlobs string
	// TerminationMessage, when set, is a file to write the report to as
	// compact JSON of at most Budget bytes.
	TerminationMessage string
	// MaxResultSize is Tekton's max-result-size, the results' size budget
	// (CheckBudget); zero means DefaultMaxResultSize (4096).
	MaxResultSize int
	// Offline forbids registry requests.
	Offline bool
	// Fsync makes every file written durable (fsync of the file and its
	// directory) before Run returns, for a layout on a volume that must
	// survive a crash of the node; off, files are only replaced atomically.
	Fsync bool
	// InsecureRegistries are hosts to reach over plain HTTP or unverified
	// TLS.
	InsecureRegistries []string
	// Logger gets progress messages; nil discards them.
	Logger *slog.Logger
	// LayoutOptions are passed to layout.Describe after the ones Options
	// implies (tests set a transport or keychain).
	LayoutOptions []layout.Option
}

// Values of Options.OCILayoutBlobs (-oci-layout-blobs).
const (
	BlobsNone     = "none"
	BlobsManifest = "manifest"
)

// pollInterval bounds how often Run looks for the report while waiting.
const pollInterval = 100 * time.Millisecond

// Run reads the report and writes what o asks for. Errors that are the
// input's fault wrap badinput.Err or report.ErrInvalid; others (a registry
// request, a write) are operation failures.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckPrefix(o.Prefix); err != nil {
		return err
	}
	if o.MaxResultSize == 0 {
		o.MaxResultSize = DefaultMaxResultSize
	}
	if err := CheckMaxResultSize(o.MaxResultSize); err != nil {
		return err
	}
	for _, k := range o.Kinds {
		if !known(k) {
			return badinput.Errorf("-results: unknown result %q; known: %s", k, joinKinds(Kinds))
		}
	}
	switch o.OCILayoutBlobs {
	case "", BlobsNone:
	case BlobsManifest:
		if o.OCILayout == "" {
			return badinput.Errorf("-oci-layout-blobs %s: needs -oci-layout", o.OCILayoutBlobs)
		}
	default:
		return badinput.Errorf("-oci-layout-blobs %q: want %s or %s", o.OCILayoutBlobs, BlobsNone, BlobsManifest)
	}

	if o.WriteReport != "" {
		if o.ReportSchema == "" {
			o.ReportSchema = report.SchemaRFC
		}
		if _, err := report.ParseSchema(string(o.ReportSchema)); err != nil {
			return badinput.Errorf("-report-schema: %v", err)
		}
	}

	imgs, err := readImages(ctx, o, log)
	if err != nil {
		return err
	}
	if err := resolve(ctx, imgs, o, log); err != nil {
		return err
	}
	p, err := primary(imgs, o)
	if err != nil {
		return err
	}
	return runImages(ctx, o, imgs, p, log)
}

// runImages is Run once the images are read and checked: compute
// everything, then write.
func runImages(ctx context.Context, o Options, imgs []pushed.Image, p int, log *slog.Logger) error {
	r := asReport(imgs[p])
	res, err := ComputeImages(imgs, p, o.source(), o.Kinds, o.Prefix)
	if err != nil {
		return err
	}
	if len(res) > 0 {
		maxSize := cmp.Or(o.MaxResultSize, DefaultMaxResultSize)
		others, err := otherResults(o.ResultsDir, res, maxSize)
		if err != nil {
			return err
		}
		if err := CheckBudget(o.ResultsDir, res, others, maxSize); err != nil {
			return err
		}
	}
	var msg []byte
	if o.TerminationMessage != "" {
		if msg, err = Message(r, o.source(), o.TerminationMessage); err != nil {
			return err
		}
		if err := checkDir(filepath.Dir(o.TerminationMessage), "-termination-message "+o.TerminationMessage); err != nil {
			return err
		}
	}
	var written []byte
	if o.WriteReport != "" {
		if err := check(r, o.source()); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := report.Encode(&buf, r, o.ReportSchema); err != nil {
			return badinput.Errorf("-write-report %s: %v", o.WriteReport, err)
		}
		if err := checkDir(filepath.Dir(o.WriteReport), "-write-report "+o.WriteReport); err != nil {
			return err
		}
		written = buf.Bytes()
	}
	var idx []byte
	blobs := layout.Blobs{}
	if o.OCILayout != "" {
		if idx, err = index(ctx, imgs, o, log); err != nil {
			return err
		}
		if o.OCILayoutBlobs == BlobsManifest {
			for _, img := range imgs {
				b, err := fetchBlobs(ctx, asReport(img), o, log)
				if err != nil {
					return err
				}
				maps.Copy(blobs, b)
			}
		}
	}

	// Then write: the layout, the termination message, the results last, so
	// that results present means everything before them was written.
	writeFile, writeLayout := atomicfile.ReplaceFile, layout.Write
	if o.Fsync {
		writeFile, writeLayout = atomicfile.WriteFile, layout.WriteDurable
	}
	if idx != nil {
		// Blobs first: a descriptor is listed once what it points to is there.
		if err := layout.WriteBlobs(o.OCILayout, blobs, o.Fsync); err != nil {
			return err
		}
		if err := writeLayout(o.OCILayout, idx); err != nil {
			return err
		}
		log.Info("wrote OCI layout", "dir", o.OCILayout, "images", len(imgs), "blobs", len(blobs))
	}
	if written != nil {
		if err := writeFile(o.WriteReport, written, 0o644); err != nil {
			return fmt.Errorf("-write-report %s: %w", o.WriteReport, err)
		}
		log.Info("wrote report", "path", o.WriteReport, "schema", o.ReportSchema)
	}
	if msg != nil {
		if err := termination.Write(o.TerminationMessage, msg, o.Fsync, log); err != nil {
			return fmt.Errorf("-termination-message %s: %w", o.TerminationMessage, err)
		}
		log.Info("wrote termination message", "path", o.TerminationMessage, "bytes", len(msg))
	}
	for _, x := range res {
		p := filepath.Join(o.ResultsDir, x.Name)
		if err := writeFile(p, []byte(x.Value), 0o644); err != nil {
			return fmt.Errorf("-results-dir %s: %w", o.ResultsDir, err)
		}
		log.Info("wrote result", "name", x.Name, "value", x.Value)
	}
	return nil
}

// fresh says whether the report file fi is one this run may take: with
// neither Wait nor Newer, any; with Newer, one modified after that file;
// with Wait alone, one that is not the file that was at the report path when
// the run started (another file renamed into place, or this one written to
// since). What it knows of the start is taken once, by newFreshness.
type freshness struct {
	newer   string      // -newer FILE, or ""
	mark    fs.FileInfo // -newer's file; or the report as found at the start (nil: none)
	checked bool        // Wait or Newer given
}

func newFreshness(o Options) (*freshness, error) {
	f := &freshness{newer: o.Newer, checked: o.Wait > 0 || o.Newer != ""}
	if o.Newer != "" {
		fi, err := os.Stat(o.Newer)
		if err != nil {
			return nil, badinput.Errorf("-newer %s: %v", o.Newer, err)
		}
		f.mark = fi
		return f, nil
	}
	if o.Wait > 0 {
		if fi, err := os.Stat(o.ReportPath); err == nil {
			f.mark = fi
		}
	}
	return f, nil
}

func (f *freshness) fresh(fi fs.FileInfo) bool {
	switch {
	case !f.checked:
		return true
	case f.newer != "":
		return fi.ModTime().After(f.mark.ModTime())
	case f.mark == nil:
		return true
	}
	return !os.SameFile(fi, f.mark) || fi.Size() != f.mark.Size() || !fi.ModTime().Equal(f.mark.ModTime())
}

// stale is the error for a report this run may not take.
func (f *freshness) stale(path string, wait time.Duration) error {
	prefix := ""
	if wait > 0 {
		prefix = fmt.Sprintf("-wait %s: ", wait)
	}
	if f.newer != "" {
		return badinput.Errorf("%sreport %s is not newer than -newer %s (written by an earlier run?)", prefix, path, f.newer)
	}
	return badinput.Errorf("%s%s: no report written after this run started (the one there is from before it: an earlier run's?)", prefix, path)
}

// waitFor polls for a fresh report at path until there is one, wait runs
// out or ctx is done. Running out is not an error here: the caller then
// says what it found.
func waitFor(ctx context.Context, path string, wait time.Duration, f *freshness, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	interval := min(pollInterval, max(wait/10, time.Millisecond))
	logged := false
	for {
		fi, err := os.Stat(path)
		if (err == nil && f.fresh(fi)) || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if !logged {
			log.Info("waiting for the report", "path", path, "wait", wait, "earlier_report_ignored", err == nil)
			logged = true
		}
		t := time.NewTimer(min(interval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("-wait %s: waiting for %s: %w", wait, path, ctx.Err())
		case <-t.C:
		}
	}
}

// index builds the index.json for -oci-layout: the layout's own index, if
// it has one, merged with every image's descriptor (asking the registry for
// what an input lacks, unless offline) under each of its references.
func index(ctx context.Context, imgs []pushed.Image, o Options, log *slog.Logger) ([]byte, error) {
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		r := asReport(img)
		if img.Digest == "" {
			return nil, badinput.Errorf("-oci-layout %s: %s is from a daemon export: it has image_id but no registry digest, which an OCI layout needs", o.OCILayout, o.source())
		}
		desc, err := layout.Describe(ctx, r, o.layoutOptions(log)...)
		if errors.Is(err, layout.ErrNeedRegistry) {
			return nil, badinput.Errorf("-oci-layout %s: %s: %v", o.OCILayout, o.source(), err)
		}
		if err != nil {
			return nil, fmt.Errorf("-oci-layout %s: %s: %w", o.OCILayout, o.source(), err)
		}
		one, err := layout.Index(img.Refs, desc)
		if err != nil {
			return nil, badinput.Errorf("-oci-layout %s: %s: %v", o.OCILayout, o.source(), err)
		}
		m, err := one.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, d := range m.Manifests {
			adds = append(adds, mutate.IndexAddendum{Add: descriptorOnly{d}, Descriptor: d})
		}
	}
	merged, err := layout.Merge(o.OCILayout, mutate.AppendManifests(empty.Index, adds...))
	if errors.Is(err, layout.ErrBadIndex) {
		return nil, badinput.Errorf("%v", err)
	}
	return merged, err
}

// descriptorOnly is a manifest known by its descriptor only.
type descriptorOnly struct{ d v1.Descriptor }

func (d descriptorOnly) Descriptor() (*v1.Descriptor, error) { c := d.d; return &c, nil }
func (d descriptorOnly) Digest() (v1.Hash, error)            { return d.d.Digest, nil }
func (d descriptorOnly) MediaType() (types.MediaType, error) { return d.d.MediaType, nil }
func (d descriptorOnly) Size() (int64, error)                { return d.d.Size, nil }

// fetchBlobs gets the manifests and configs for -oci-layout-blobs manifest.
func fetchBlobs(ctx context.Context, r *report.Report, o Options, log *slog.Logger) (layout.Blobs, error) {
	if err := layout.CheckBlobsDir(o.OCILayout); err != nil {
		return nil, badinput.Errorf("%v", err)
	}
	blobs, err := layout.FetchManifests(ctx, r, o.layoutOptions(log)...)
	if errors.Is(err, layout.ErrNeedBlobs) {
		return nil, badinput.Errorf("-oci-layout-blobs %s: %v", o.OCILayoutBlobs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("-oci-layout-blobs %s: %s: %w", o.OCILayoutBlobs, o.source(), err)
	}
	return blobs, nil
}

// layoutOptions are the package layout options o implies, then
// o.LayoutOptions.
func (o Options) layoutOptions(log *slog.Logger) []layout.Option {
	return append([]layout.Option{
		layout.WithOffline(o.Offline),
		layout.WithInsecureRegistries(o.InsecureRegistries...),
		layout.WithLogger(log),
	}, o.LayoutOptions...)
}

// otherResults returns the results already in dir that this run will not
// overwrite: Tekton's entrypoint puts every declared result present into the
// same termination message, so they count against the budget. Temp files
// and names that cannot be results are skipped.
func otherResults(dir string, ours []Result, maxSize int) ([]Result, error) {
	if err := checkDir(dir, "-results-dir "+dir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("-results-dir %s: %w", dir, err)
	}
	mine := map[string]bool{}
	for _, r := range ours {
		mine[r.Name] = true
	}
	var others []Result
	for _, e := range entries {
		n := e.Name()
		if mine[n] || !e.Type().IsRegular() || !resultNameFormat.MatchString(n) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("-results-dir %s: %w", dir, err)
		}
		// More than the budget cannot fit anyway; don't read a huge file.
		b, err := io.ReadAll(io.LimitReader(f, int64(max(maxSize, Budget))+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("-results-dir %s: %w", dir, err)
		}
		others = append(others, Result{Name: n, Value: string(b)})
	}
	return others, nil
}

// checkDir fails unless dir is an existing directory; what names the flag.
func checkDir(dir, what string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return badinput.Errorf("%s: %v", what, err)
	}
	if !fi.IsDir() {
		return badinput.Errorf("%s: %s is not a directory", what, dir)
	}
	return nil
}
