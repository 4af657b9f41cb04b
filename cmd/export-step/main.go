// Command export-step pushes (or loads) one image to its destinations and
// records what it wrote in report.toml. See DESIGN.md, section export-step.
//
//	export-step [flags] IMAGE [IMAGE...]
//
// stdout carries only the digest (or, with -daemon, the image ID) and a
// newline. Exit codes: 0 success, 1 export failed (no report written),
// 2 bad usage or input (nothing pushed or written).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/export"
	"github.com/exportreport/exportreport/pkg/insecureregistry"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/pkg/termination"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: export-step [flags] IMAGE [IMAGE...]

IMAGE are destination tags; the first is the primary one. Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var failureMessage string // -failure-message, once parsed
	fail := func(code int, err error) int {
		// One line, whatever the error carries (a registry's body, a join).
		msg := badinput.Fold(strings.ReplaceAll(err.Error(), "\n", "; "))
		fmt.Fprintf(stderr, "export-step: %s\n", msg)
		if failureMessage != "" {
			if werr := termination.WriteStepError(failureMessage, "export-step: "+msg); werr != nil {
				fmt.Fprintf(stderr, "export-step: -failure-message %s: %v\n", failureMessage, werr)
			}
		}
		return code
	}
	opts, err := parseFlags(args, stderr, getenv, &failureMessage)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(2, err)
	}
	// Logs (info, or warnings only with -quiet) and progress lines go to
	// stderr through the one serialised writer export.Run makes of it.
	rep, err := export.Run(ctx, opts)
	if err != nil && len(opts.Tags) == 0 {
		err = fmt.Errorf("%w; usage: export-step [flags] IMAGE [IMAGE...]", err)
	}
	if err != nil {
		if errors.Is(err, badinput.Err) || errors.Is(err, report.ErrInvalid) {
			return fail(2, err)
		}
		return fail(1, err)
	}
	out := rep.Image.Digest
	if opts.Daemon {
		out = rep.Image.ImageID
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// parseFlags returns the export's options; failureMessage receives
// -failure-message as soon as it is parsed, so that a later bad flag is
// recorded there too.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string, failureMessage *string) (export.Options, error) {
	fs := flag.NewFlagSet("export-step", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are one line, printed by run; -h prints usage below

	defaultReport := report.DefaultPath
	if p := getenv(report.EnvPath); p != "" {
		defaultReport = p
	}
	o := export.Options{Stderr: stderr}
	var (
		appends, labels, envs          list
		insecureHosts                  insecureregistry.Hosts
		entrypoint, cmd, workdir, user optional
	)
	fs.StringVar(&o.Source, "source", "", "`SOURCE`: oci:DIR[:TAG|@DIGEST] | docker-archive:FILE | docker-daemon:REF | docker://REF | PATH (auto-detected)")
	fs.BoolVar(&o.Daemon, "daemon", false, "write to the Docker daemon instead of a registry")
	fs.StringVar(&o.OCILayout, "oci-layout", "", "also write the result into the OCI image layout `DIR`")
	fs.Var(&appends, "append", "add `DIR[:DEST]` as one reproducible layer (repeatable)")
	fs.Var(&labels, "label", "set config label `K=V` (repeatable)")
	fs.Var(&envs, "env", "set config env `K=V` (repeatable)")
	fs.Var(&entrypoint, "entrypoint", "set the entrypoint: `JSON|PATH`, a JSON array of strings (e.g. [\"/bin/app\",\"-v\"]) or else one executable path, never split on spaces; \"\" or [] clears it")
	fs.Var(&cmd, "cmd", "set the cmd: `JSON|ARG`, a JSON array of strings or else one argument, never split on spaces; \"\" or [] clears it")
	fs.Var(&workdir, "workdir", "set the working `DIR`")
	fs.Var(&user, "user", "set the `USER[:GROUP]`")
	fs.StringVar(&o.Platform, "platform", "", "pick `OS/ARCH[/VARIANT]` from an index source (default: the whole index; with -daemon, the daemon's platform)")
	fs.StringVar(&o.Edits.CacheDir, "cache-dir", "", "layer cache `DIR` for -append")
	fs.StringVar(&o.ReportPath, "report", defaultReport, "write the report to `PATH` (env "+report.EnvPath+")")
	o.ReportSchema = report.SchemaRFC
	fs.Var(&o.ReportSchema, "report-schema", "report spelling: `rfc|platform`")
	fs.Var(&insecureHosts, "insecure-registry", "plain HTTP / unverified TLS for `HOST[:PORT]` only (repeatable, or comma-separated)")
	fs.IntVar(&o.Jobs, "jobs", export.DefaultJobs, "parallel blob uploads `N` (>= 1)")
	o.Compression = export.CompressionGzip
	fs.Var(&o.Compression, "compression", "`gzip|zstd` for the layers a docker-archive or the Docker daemon holds uncompressed (zstd: OCI media type, containerd >= 1.5)")
	fs.DurationVar(&o.Timeout, "timeout", export.DefaultTimeout, "the whole export's time budget `D`, retries, Retry-After waits and stalled connections included")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines, warnings only")
	fs.StringVar(failureMessage, "failure-message", "", "on failure, also write the one-line error to `FILE` as a Tekton termination message entry (key \"error\"; a Tekton step's is /tekton/termination)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
		}
		return o, err
	}

	// No IMAGE and -jobs below 1 are refused by export.Run, before it
	// touches anything; a zero -timeout would mean its default there.
	o.Tags = fs.Args()
	if o.Timeout <= 0 {
		return o, fmt.Errorf("-timeout must be positive, got %s", o.Timeout)
	}
	o.Insecure = insecureHosts

	for _, a := range appends {
		o.Edits.Append = append(o.Edits.Append, export.ParseAppend(a))
	}
	for _, kv := range labels {
		k, v, err := splitKV("-label", kv)
		if err != nil {
			return o, err
		}
		if o.Edits.Labels == nil {
			o.Edits.Labels = map[string]string{}
		}
		o.Edits.Labels[k] = v
	}
	for _, kv := range envs {
		if _, _, err := splitKV("-env", kv); err != nil {
			return o, err
		}
		o.Edits.Env = append(o.Edits.Env, kv)
	}
	var err error
	if o.Edits.Entrypoint, err = entrypoint.command("-entrypoint"); err != nil {
		return o, err
	}
	if o.Edits.Cmd, err = cmd.command("-cmd"); err != nil {
		return o, err
	}
	o.Edits.Workdir = workdir.ptr()
	o.Edits.User = user.ptr()

	if o.Edits.Created, err = export.ParseSourceDateEpoch(getenv("SOURCE_DATE_EPOCH")); err != nil {
		return o, err
	}
	return o, nil
}

func splitKV(flagName, kv string) (string, string, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%s %q: want KEY=VALUE", flagName, kv)
	}
	return k, v, nil
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// optional is a string flag that knows whether it was given.
type optional struct {
	set   bool
	value string
}

func (o *optional) String() string     { return o.value }
func (o *optional) Set(s string) error { o.set, o.value = true, s; return nil }

func (o *optional) ptr() *string {
	if !o.set {
		return nil
	}
	v := o.value
	return &v
}

// command reads -entrypoint/-cmd: nil when not given, else
// export.ParseCommand's reading of the value.
func (o *optional) command(flagName string) ([]string, error) {
	if !o.set {
		return nil, nil
	}
	return export.ParseCommand(flagName, o.value)
}
