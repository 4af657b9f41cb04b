package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/export/internal/dockerdaemon"
	"github.com/exportreport/exportreport/pkg/export/internal/registry"
	"github.com/exportreport/exportreport/pkg/insecureregistry"
	"github.com/exportreport/exportreport/pkg/report"
)

// DefaultJobs is the default number of parallel blob uploads (-jobs).
const DefaultJobs = 4

// DefaultTimeout is the default time budget of an export (-timeout).
const DefaultTimeout = 10 * time.Minute

// UserAgent is sent to registries.
const UserAgent = "exportreport/export-step"

// DefaultIdleTimeout is how long a registry connection may go without a
// byte moving either way before it is given up (Options.IdleTimeout).
const DefaultIdleTimeout = registry.DefaultIdleTimeout

// Options describe one export: where the image comes from, how it is
// edited, where it goes and where the report is written. Each field says
// what its zero value does. Three have no usable zero value: Tags, Jobs,
// and one of Source or Artifact; Run refuses the zero value of each with
// an error wrapping badinput.Err. A command fills Options from its flags
// (cmd/export-step) and calls Run once.
type Options struct {
	// Source is a -source value (see ParseSource). Exactly one of Source and
	// Artifact is set; "" means Artifact is.
	Source string
	// Artifact, instead of Source, exports an image or index the caller has
	// already built (library use: no source is opened); nil means Source is.
	Artifact Artifact

	// Tags are the destination references, fully qualified or not; the first
	// is the primary one. Each must be a tag (not a digest). Required: nil
	// or empty is refused.
	Tags []string
	// Daemon writes to the Docker daemon instead of a registry; false
	// pushes to the registries of Tags.
	Daemon bool
	// OCILayout, when set, also writes the result into the OCI image layout
	// at this directory (created if missing); "" writes no layout.
	OCILayout string
	// Platform ("os/arch[/variant]") selects one image from an index source.
	// "" exports the whole index, or, with Daemon, the daemon's platform.
	Platform string
	// Edits are applied to the source before it is written; the zero
	// value changes nothing (see Edits for each of its fields).
	Edits Edits

	// ReportPath is where report.toml goes; "" means report.DefaultPath.
	ReportPath string
	// ReportSchema is the report spelling; "" means report.SchemaRFC.
	ReportSchema report.Schema

	// Insecure lists registry hosts ("host" or "host:port") spoken to over
	// plain HTTP or TLS without certificate verification, matched by
	// insecureregistry.Hosts.Match (case-insensitive; a host without a port
	// matches every port of that host); nothing else is affected. nil: every
	// registry is spoken to over verified TLS.
	Insecure []string
	// Jobs bounds parallel blob uploads per repository. Required: below 1
	// (the zero value included) is refused; DefaultJobs is -jobs' default.
	Jobs int
	// Compression compresses the layers a docker-archive or the Docker
	// daemon holds uncompressed (-compression); "" means gzip. Layers
	// a source holds compressed are pushed as they are.
	Compression Compression
	// Quiet turns off progress lines and, for the logger Run makes, info
	// logs (warnings only); false prints both.
	Quiet bool
	// Stderr receives progress lines, and logs when Logger is nil; nil
	// means os.Stderr. Run serialises its writes, so progress lines and log
	// lines never interleave.
	Stderr io.Writer
	// Logger receives every log line of the export (the source, the edits
	// and their layer cache, the push, the daemon, the report). nil means a
	// text logger on Stderr (info level, warnings only with Quiet), writing
	// through the same serialised writer as the progress lines; a Logger
	// given here that writes to Stderr too is the caller's to serialise.
	Logger *slog.Logger
	// Keychain resolves registry credentials; nil means authn.DefaultKeychain
	// (the Docker config: DOCKER_CONFIG or ~/.docker/config.json).
	Keychain authn.Keychain

	// Transport, when set, replaces the default HTTP transport for registry
	// requests (tests, proxies); the per-host TLS policy of Insecure and
	// IdleTimeout are then the transport's own business. nil means a clone
	// of remote.DefaultTransport with that policy.
	Transport http.RoundTripper
	// RetryBackoff overrides the backoff for transient registry failures
	// (5xx, 429, 408, resets, timeouts); the zero value (Steps 0) means the
	// default: 500ms doubling, at most 5 tries, capped at 10s between tries.
	RetryBackoff remote.Backoff

	// IdleTimeout fails a registry connection on which no byte moved for
	// this long (a stalled registry); zero means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// Timeout is the whole export's time budget, from the first request to
	// the report: retries, Retry-After waits and stalled connections
	// (IdleTimeout) included; a retry that would come after it is not
	// made. Zero means DefaultTimeout; below zero is refused.
	Timeout time.Duration

	// ProgressInterval is how often a progress line is printed during a
	// push; zero means every second. Ignored with Quiet.
	ProgressInterval time.Duration
}

// defaultRetryBackoff is a capped exponential backoff: 0.5s, 1s, 2s, 4s.
var defaultRetryBackoff = remote.Backoff{
	Duration: 500 * time.Millisecond,
	Factor:   2,
	Jitter:   0.1,
	Steps:    5,
	Cap:      10 * time.Second,
}

// plan is Options after validation: everything parsed, nothing done yet.
type plan struct {
	opts       Options
	source     *Source
	tags       []name.Tag
	insecure   insecureregistry.Hosts
	platform   *v1.Platform
	schema     report.Schema
	reportPath string
	timeout    time.Duration
	stderr     io.Writer
	log        *slog.Logger
	keychain   authn.Keychain
	backoff    remote.Backoff
	compress   Compression
	cleanup    []func() // run when the export ends
}

// Run exports as opts say and returns the report it wrote. The steps run in
// this order, and each starts only if the previous one succeeded:
//
//  1. validate every input (errors wrap badinput.Err; nothing is touched);
//  2. remove a stale report at the report path;
//  3. open the source (lazily), select the platform, apply the edits (this
//     also fills the -cache-dir layer cache; a cache failure is a warning);
//  4. push to every registry tag, then verify that each registry returned
//     the digest computed locally -- or, with Daemon, load into the Docker
//     daemon, tag, and read the image ID back;
//  5. write the OCI layout, if asked;
//  6. write the report atomically.
//
// A failure after step 2 leaves no report behind.
func Run(ctx context.Context, opts Options) (*report.Report, error) {
	p, err := newPlan(opts)
	if err != nil {
		return nil, err
	}
	if err := report.Remove(p.reportPath); err != nil {
		return nil, fmt.Errorf("remove stale report %s: %w", p.reportPath, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	defer func() {
		for _, f := range p.cleanup {
			f()
		}
	}()
	rep, err := p.run(ctx)
	switch {
	case err == nil:
	case errors.Is(err, registry.ErrBudget):
		return nil, fmt.Errorf("-timeout %s: %w", p.timeout, err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("-timeout %s: the export did not finish within its time budget: %w", p.timeout, err)
	}
	return rep, err
}

// run is Run once the inputs are checked and the stale report removed,
// within the time budget (ctx).
func (p *plan) run(ctx context.Context) (*report.Report, error) {
	opts := p.opts
	var err error

	var docker *client.Client
	if opts.Daemon || (p.source != nil && p.source.Transport == TransportDaemon) {
		docker, err = dockerdaemon.NewClient()
		if err != nil {
			return nil, err
		}
		defer docker.Close()
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	rt := registry.WithRetryAfter(registry.NewTransport(opts.Transport, p.insecure, idle))

	art, err := p.open(ctx, docker, rt)
	if err != nil {
		return nil, err
	}

	rep := &report.Report{}
	for _, t := range p.tags {
		rep.Image.Tags = append(rep.Image.Tags, t.Name())
	}
	var what string // what was written, for the report-write error
	if opts.Daemon {
		img, ok := art.(v1.Image)
		if !ok {
			return nil, badinput.Errorf("-daemon needs a single image, the source is an index; choose one with -platform")
		}
		id, err := dockerdaemon.Write(ctx, docker, img, p.tags, p.log)
		if err != nil {
			return nil, err
		}
		rep.Image.ImageID = id
		what = fmt.Sprintf("loaded into the Docker daemon as %s (image ID %s)", p.tags[0].Name(), id)
	} else {
		desc, err := pushAndVerify(ctx, art, p.tags, registryConfig{
			transport: rt,
			keychain:  p.keychain,
			jobs:      opts.Jobs,
			backoff:   p.backoff,
			progress:  p.progressWriter(),
			interval:  p.opts.ProgressInterval,
			log:       p.log,
		})
		if err != nil {
			return nil, err
		}
		rep.Image.Digest = desc.Digest.String()
		rep.Image.ManifestSize = desc.Size
		rep.Image.MediaType = string(desc.MediaType)
		what = fmt.Sprintf("pushed as %s@%s", p.tags[0].Name(), desc.Digest)
	}

	if opts.OCILayout != "" {
		desc, err := writeOCILayout(opts.OCILayout, art, p.tags)
		if err != nil {
			return nil, fmt.Errorf("image WAS %s, but -oci-layout failed: %w", what, err)
		}
		p.log.Info("wrote OCI layout", "dir", opts.OCILayout, "tags", len(p.tags), "digest", desc.Digest.String())
	}

	if err := report.Write(p.reportPath, rep, p.schema); err != nil {
		// %v, not %w: a report the code built is never the user's fault (exit 1).
		return nil, fmt.Errorf("image WAS %s, but the report could not be written: %v", what, err)
	}
	p.log.Info("wrote report", "path", p.reportPath)
	return rep, nil
}

// open resolves the source, selects the platform and applies the edits.
func (p *plan) open(ctx context.Context, docker *client.Client, rt http.RoundTripper) (Artifact, error) {
	art := p.opts.Artifact
	if art == nil {
		src := *p.source
		sopts := []SourceOption{
			WithRemoteOptions(remote.WithContext(ctx), remote.WithAuthFromKeychain(p.keychain),
				remote.WithTransport(rt), remote.WithUserAgent(UserAgent), remote.WithJobs(p.opts.Jobs),
				remote.WithRetryBackoff(p.backoff), remote.WithRetryStatusCodes(registry.RetryStatusCodes...),
				remote.WithRetryPredicate(registry.IsTransient)),
		}
		if src.Transport == TransportRemote {
			if ref, err := name.ParseReference(src.Ref); err == nil && p.insecure.Match(ref.Context().RegistryStr()) {
				sopts = append(sopts, WithNameOptions(name.Insecure))
			}
		}
		if docker != nil {
			sopts = append(sopts, WithDockerClient(docker), WithDaemonOptions(daemon.WithClient(docker), daemon.WithContext(ctx)))
		}
		sopts = append(sopts, WithCompression(p.compress), WithLogger(p.log))
		if src.Transport == TransportDockerArchive || src.Transport == TransportDaemon {
			// Layers compressed here are kept here until the export ends.
			dir, err := os.MkdirTemp("", "export-step-")
			if err != nil {
				p.log.Warn("no scratch directory for compressed layers: each is compressed again when it is read", "err", err)
			} else {
				p.cleanup = append(p.cleanup, func() { os.RemoveAll(dir) })
				sopts = append(sopts, WithScratchDir(dir))
			}
		}
		var err error
		art, err = Open(ctx, src, sopts...)
		if err != nil {
			return nil, err // names the source; wraps badinput.Err when it is not an image
		}
	}

	if p.platform != nil {
		var err error
		if art, err = SelectPlatform(art, p.platform, p.log); err != nil {
			return nil, err // names -platform
		}
	} else if _, isIndex := art.(v1.ImageIndex); isIndex && p.opts.Daemon {
		platform, err := dockerdaemon.Platform(ctx, docker)
		if err != nil {
			return nil, err
		}
		p.log.Info("the source is an index; selecting the Docker daemon's platform", "platform", platform.String())
		if art, err = SelectPlatform(art, platform, p.log); err != nil {
			return nil, fmt.Errorf("-daemon: the source is an index, choosing the Docker daemon's platform %s (give -platform to choose another): %w", platform, err)
		}
	}
	// Apply also fills -cache-dir; a cache failure there is only a warning.
	var err error
	if art, err = Apply(ctx, art, p.opts.Edits, p.log); err != nil {
		return nil, err // names the flag at fault
	}
	switch art.(type) {
	case v1.Image, v1.ImageIndex:
	default:
		return nil, badinput.Errorf("source yields %T, neither an image nor an index", art)
	}
	if !p.opts.Daemon {
		if err := checkManifestSizes(art, "destination IMAGE "+p.tags[0].Name()); err != nil {
			return nil, err
		}
	}
	return art, nil
}

// newPlan validates opts. Every error wraps badinput.Err and names the flag.
func newPlan(opts Options) (*plan, error) {
	var err error
	p := &plan{opts: opts, stderr: opts.Stderr, keychain: opts.Keychain, backoff: opts.RetryBackoff}
	if p.stderr == nil {
		p.stderr = os.Stderr
	}
	p.stderr = &syncWriter{w: p.stderr}
	p.log = opts.Logger
	if p.log == nil {
		level := slog.LevelInfo
		if opts.Quiet {
			level = slog.LevelWarn
		}
		p.log = slog.New(slog.NewTextHandler(p.stderr, &slog.HandlerOptions{Level: level}))
	}
	if p.keychain == nil {
		p.keychain = authn.DefaultKeychain
	}
	if p.backoff.Steps == 0 {
		p.backoff = defaultRetryBackoff
	}

	if opts.Jobs < 1 {
		return nil, badinput.Errorf("-jobs must be at least 1, got %d", opts.Jobs)
	}
	if p.compress, err = ParseCompression(string(opts.Compression)); err != nil {
		return nil, err
	}
	if p.compress == CompressionZstd && opts.Daemon {
		// Measured: Docker 20.10 fails to unpack zstd layers
		// ("archive/tar: invalid tar header"); docs/benchmarks.md.
		return nil, badinput.Errorf("-compression zstd: not with -daemon (the Docker engine may not unpack zstd layers; Docker 20.10 does not)")
	}
	switch p.timeout = opts.Timeout; {
	case p.timeout == 0:
		p.timeout = DefaultTimeout
	case p.timeout < 0:
		return nil, badinput.Errorf("-timeout must be positive, got %s", opts.Timeout)
	}

	hosts, err := insecureregistry.Parse(opts.Insecure)
	if err != nil {
		return nil, badinput.Wrap(err)
	}
	p.insecure = hosts

	switch {
	case opts.Artifact != nil && opts.Source != "":
		return nil, badinput.Errorf("give either a source or an artifact, not both")
	case opts.Artifact == nil && opts.Source == "":
		return nil, badinput.Errorf("-source is required")
	case opts.Source != "":
		src, err := ParseSource(opts.Source) // its errors name -source
		if err != nil {
			return nil, badinput.Wrap(err)
		}
		p.source = &src
	}

	if opts.Platform != "" {
		pl, err := ParsePlatform(opts.Platform) // its errors name -platform
		if err != nil {
			return nil, badinput.Wrap(err)
		}
		p.platform = pl
	}

	if len(opts.Tags) == 0 {
		return nil, badinput.Errorf("no destination IMAGE given")
	}
	seen := map[string]string{}
	for _, s := range opts.Tags {
		t, err := parseTag(s, p.insecure)
		if err != nil {
			return nil, badinput.Errorf("destination IMAGE %q: %v", s, err)
		}
		if prev, dup := seen[t.Name()]; dup {
			return nil, badinput.Errorf("destination IMAGE %q names the same tag as %q", s, prev)
		}
		seen[t.Name()] = s
		p.tags = append(p.tags, t)
	}

	schema, err := report.ParseSchema(string(opts.ReportSchema))
	if err != nil {
		return nil, badinput.Errorf("-report-schema: %v", err)
	}
	p.schema = schema

	p.reportPath = opts.ReportPath
	if p.reportPath == "" {
		p.reportPath = report.DefaultPath
	}
	if err := checkReportPath(p.reportPath); err != nil {
		return nil, badinput.Errorf("-report %s: %v", p.reportPath, err)
	}

	if opts.OCILayout != "" {
		if err := checkOCILayoutDir(opts.OCILayout); err != nil {
			return nil, badinput.Errorf("-oci-layout %v", err)
		}
	}
	return p, nil
}

// checkReportPath fails early for a report that could never be written:
// the path is a directory, or the nearest existing ancestor of its directory
// (report.Write creates missing ones) is not a directory.
func checkReportPath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			return nil
		}
		// Missing, or under a file (ENOTDIR): look further up.
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

// parseTag parses a destination: a tag, never a digest. Only references to
// an insecure host get name.Insecure.
func parseTag(s string, insecureHosts insecureregistry.Hosts) (name.Tag, error) {
	if strings.Contains(s, "@") {
		return name.Tag{}, errors.New("must be a tag, not a digest reference")
	}
	// go-containerregistry lets any byte through in a registry name; a
	// registry is reached by an ASCII host name (punycode, xn--..., for an
	// internationalised one), and the report must hold valid UTF-8.
	for _, r := range []byte(s) {
		if r <= ' ' || r >= 0x7f {
			return name.Tag{}, errors.New("must be printable ASCII without spaces (write an internationalised host name in punycode, xn--...)")
		}
	}
	t, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, err
	}
	if insecureHosts.Match(t.RegistryStr()) {
		return name.NewTag(s, name.Insecure)
	}
	return t, nil
}

// progressWriter is where progress lines go, nil when quiet.
func (p *plan) progressWriter() io.Writer {
	if p.opts.Quiet {
		return nil
	}
	return p.stderr
}
