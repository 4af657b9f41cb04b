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
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/exportreport/exportreport/pkg/atomicfile"
	"github.com/exportreport/exportreport/pkg/layout"
	"github.com/exportreport/exportreport/pkg/report"
)

// Options is one run of report2results.
type Options struct {
	// ReportPath is the report to read.
	ReportPath string
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
// input's fault wrap ErrBadInput or report.ErrInvalid; others (a registry
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
			return badInputf("-results: unknown result %q; known: %s", k, joinKinds(Kinds))
		}
	}
	switch o.OCILayoutBlobs {
	case "", BlobsNone:
	case BlobsManifest:
		if o.OCILayout == "" {
			return badInputf("-oci-layout-blobs %s: needs -oci-layout", o.OCILayoutBlobs)
		}
	default:
		return badInputf("-oci-layout-blobs %q: want %s or %s", o.OCILayoutBlobs, BlobsNone, BlobsManifest)
	}

	r, err := readReport(ctx, o, log)
	if err != nil {
		return err
	}
	return runReport(ctx, o, r, log)
}

// runReport is Run once the report is read: check and compute everything,
// then write.
func runReport(ctx context.Context, o Options, r *report.Report, log *slog.Logger) error {
	res, err := Compute(r, o.ReportPath, o.Kinds, o.Prefix)
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
		if msg, err = Message(r, o.ReportPath, o.TerminationMessage); err != nil {
			return err
		}
		if err := checkDir(filepath.Dir(o.TerminationMessage), "-termination-message "+o.TerminationMessage); err != nil {
			return err
		}
	}
	var idx []byte
	var blobs layout.Blobs
	if o.OCILayout != "" {
		if idx, err = index(ctx, r, o, log); err != nil {
			return err
		}
		if o.OCILayoutBlobs == BlobsManifest {
			if blobs, err = fetchBlobs(ctx, r, o, log); err != nil {
				return err
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
		log.Info("wrote OCI layout", "dir", o.OCILayout, "tags", len(r.Image.Tags), "blobs", len(blobs))
	}
	if msg != nil {
		if err := writeMessage(o.TerminationMessage, msg, o.Fsync, log); err != nil {
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
			return nil, badInputf("-newer %s: %v", o.Newer, err)
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
		return badInputf("%sreport %s is not newer than -newer %s (written by an earlier run?)", prefix, path, f.newer)
	}
	return badInputf("%s%s: no report written after this run started (the one there is from before it: an earlier run's?)", prefix, path)
}

// readReport reads the report at path, first waiting up to wait for a
// fresh one (freshness). The writer renames a complete report into place,
// so a report that exists is whole.
func readReport(ctx context.Context, o Options, log *slog.Logger) (*report.Report, error) {
	path, wait := o.ReportPath, o.Wait
	f, err := newFreshness(o)
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
	r, err := report.Read(path)
	if err != nil {
		if wait > 0 && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("-wait %s: %w", wait, err)
		}
		return nil, err
	}
	return r, nil
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
// it has one, merged with the report's descriptor (asking the registry for
// what the report lacks, unless offline) under every tag.
func index(ctx context.Context, r *report.Report, o Options, log *slog.Logger) ([]byte, error) {
	if r.Image.Digest == "" {
		return nil, badInputf("-oci-layout %s: report %s is from a daemon export: it has image_id but no registry digest, which an OCI layout needs", o.OCILayout, o.ReportPath)
	}
	desc, err := layout.Describe(ctx, r, o.layoutOptions(log)...)
	if errors.Is(err, layout.ErrNeedRegistry) {
		return nil, badInputf("-oci-layout %s: report %s: %v", o.OCILayout, o.ReportPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("-oci-layout %s: report %s: %w", o.OCILayout, o.ReportPath, err)
	}
	idx, err := layout.Index(r.Image.Tags, desc)
	if err != nil {
		return nil, badInputf("-oci-layout %s: report %s: %v", o.OCILayout, o.ReportPath, err)
	}
	merged, err := layout.Merge(o.OCILayout, idx)
	if errors.Is(err, layout.ErrBadIndex) {
		return nil, badInputf("%v", err)
	}
	return merged, err
}

// fetchBlobs gets the manifests and configs for -oci-layout-blobs manifest.
func fetchBlobs(ctx context.Context, r *report.Report, o Options, log *slog.Logger) (layout.Blobs, error) {
	if err := layout.CheckBlobsDir(o.OCILayout); err != nil {
		return nil, badInputf("%v", err)
	}
	blobs, err := layout.FetchManifests(ctx, r, o.layoutOptions(log)...)
	if errors.Is(err, layout.ErrNeedBlobs) {
		return nil, badInputf("-oci-layout-blobs %s: %v", o.OCILayoutBlobs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("-oci-layout-blobs %s: report %s: %w", o.OCILayoutBlobs, o.ReportPath, err)
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
		return badInputf("%s: %v", what, err)
	}
	if !fi.IsDir() {
		return badInputf("%s: %s is not a directory", what, dir)
	}
	return nil
}

// replaceFile and syncedFile write the termination message; tests swap
// them to fail the way a bind mount does.
var replaceFile, syncedFile = atomicfile.ReplaceFile, atomicfile.WriteFile

// writeMessage writes the termination message atomically where it can.
// Kubernetes bind-mounts the termination message file into the container,
// and renaming onto a mount point fails (EBUSY), as does making a temp file
// beside it in a read-only /dev; then the file is rewritten in place, which
// is safe because the kubelet reads it only after the container exits.
func writeMessage(path string, data []byte, fsync bool, log *slog.Logger) error {
	write := replaceFile
	if fsync {
		write = syncedFile
	}
	err := write(path, data, 0o644)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) &&
		!errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	log.Debug("termination message: atomic replace impossible, writing in place", "path", path, "reason", err)
	// O_NOFOLLOW: a termination message path that is a symlink is never
	// written through (the bind-mounted file is a real file).
	f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|openNoFollow, 0)
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	if _, werr := f.Write(data); werr != nil {
		f.Close()
		return werr
	}
	if fsync {
		if serr := f.Sync(); serr != nil {
			f.Close()
			return serr
		}
	}
	return f.Close()
}
