// Command report2results turns an export report (report.toml) into Tekton
// results, an optional termination message and an optional OCI image layout.
// It prints nothing on stdout; logs and the one-line error go to stderr.
// Exit codes: 0 ok, 1 operation failed, 2 bad usage or input.
// See docs/results.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/insecureregistry"
	"github.com/exportreport/exportreport/pkg/pushed"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/pkg/results"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	reportPath := report.DefaultPath
	if p := os.Getenv(report.EnvPath); p != "" {
		reportPath = p
	}
	var o results.Options
	var from pushed.FromList
	var list string
	var insecureHosts insecureregistry.Hosts
	var quiet bool
	fs := flag.NewFlagSet("report2results", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&from, "from", "read `KIND:PATH`, what a builder wrote (repeatable): report, refs, digest, buildx, jib, oci-layout or auto (docs/results.md)")
	fs.Func("report", "`PATH` of the report to read, = -from report:PATH (default "+reportPath+", env "+report.EnvPath+")", func(p string) error {
		from = append(from, pushed.From{Kind: pushed.Report, Path: p})
		return nil
	})
	fs.StringVar(&o.Image, "image", "", "`REF` the image a bare digest (-from digest:) is of, or the repository of a layout's tags")
	fs.StringVar(&o.Primary, "primary", "", "of several images, the one `REF` names is IMAGE_URL, IMAGE_DIGEST, ... (default: the first)")
	fs.StringVar(&o.LayoutDir, "layout-dir", os.Getenv("CNB_LAYOUT_DIR"), "the Buildpacks lifecycle's layout `DIR`, for its report of an export to an OCI layout (env CNB_LAYOUT_DIR)")
	fs.StringVar(&o.WriteReport, "write-report", "", "also write the (primary) image as a report.toml to `PATH`")
	fs.Var(&o.ReportSchema, "report-schema", "spelling of -write-report: rfc or platform (default rfc)")
	fs.StringVar(&o.ResultsDir, "results-dir", "/tekton/results", "`DIR` to write result files to")
	fs.StringVar(&list, "results", "IMAGE_DIGEST,IMAGE_URL", "`LIST` of results to write, comma-separated: IMAGE_DIGEST, IMAGE_URL, IMAGES, IMAGE_ID, IMAGE_REF, ARTIFACT_OUTPUTS")
	fs.StringVar(&o.Prefix, "prefix", "", "name results `P`_IMAGE_DIGEST, P_IMAGE_URL, ...")
	fs.StringVar(&o.OCILayout, "oci-layout", "", "also write oci-layout + index.json (one descriptor per tag, merged into what DIR lists) into `DIR`")
	fs.StringVar(&o.OCILayoutBlobs, "oci-layout-blobs", results.BlobsNone, "with -oci-layout, `WHICH` blobs to fetch from the registry: none (descriptors only) or manifest (manifests and configs, no layers)")
	fs.DurationVar(&o.Wait, "wait", 0, "wait up to `DURATION` for a report written after this run started (one already there is an earlier run's)")
	fs.StringVar(&o.Newer, "newer", "", "take only a report newer than `FILE` (its modification time), instead of one written after this run started")
	fs.StringVar(&o.TerminationMessage, "termination-message", "", "also write the report as compact JSON (<= 4096 bytes) to file `F`")
	fs.IntVar(&o.MaxResultSize, "max-result-size", results.DefaultMaxResultSize, "the results' size budget `N` in bytes: Tekton's max-result-size (4096, the termination message; larger with results-from: sidecar-logs, per result)")
	fs.BoolVar(&o.Offline, "offline", false, "never contact a registry")
	fs.BoolVar(&o.Fsync, "fsync", false, "fsync every file written (for an -oci-layout on a volume that must survive a node crash); without it files are still replaced atomically")
	fs.Var(&insecureHosts, "insecure-registry", "plain HTTP / unverified TLS for `HOST`[:PORT] only (repeatable, or comma-separated)")
	fs.BoolVar(&quiet, "quiet", false, "log warnings and errors only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: report2results [flags]   (see docs/results.md)")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "report2results: %v (see -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "report2results: takes no arguments, got %q (see -h)\n", fs.Args())
		return 2
	}
	if o.Wait < 0 {
		fmt.Fprintf(stderr, "report2results: -wait %s: must not be negative\n", o.Wait)
		return 2
	}
	if err := results.CheckMaxResultSize(o.MaxResultSize); err != nil {
		fmt.Fprintf(stderr, "report2results: %v\n", err)
		return 2
	}
	kinds, err := results.ParseKinds(list)
	if err != nil {
		fmt.Fprintf(stderr, "report2results: %v\n", err)
		return 2
	}
	o.Kinds = kinds
	o.InsecureRegistries = insecureHosts
	o.From, o.ReportPath = from, reportPath
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := results.Run(ctx, o); err != nil {
		// One line, whatever a wrapped error carries.
		fmt.Fprintf(stderr, "report2results: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		if errors.Is(err, badinput.Err) || errors.Is(err, report.ErrInvalid) {
			return 2
		}
		return 1
	}
	return 0
}
