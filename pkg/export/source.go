package export

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// maxMetadataBytes bounds the JSON documents read into memory (index.json,
// oci-layout, a docker-archive manifest.json).
const maxMetadataBytes = 16 << 20

// SourceOption configures Open.
type SourceOption func(*sourceOptions)

type sourceOptions struct {
	remote       []remote.Option
	name         []name.Option
	daemon       []daemon.Option
	docker       *client.Client
	compression  Compression
	compressJobs int
	scratch      string
	log          *slog.Logger
}

// WithCompression compresses the layers a docker-archive or the Docker
// daemon holds uncompressed with c (default gzip).
func WithCompression(c Compression) SourceOption {
	return func(o *sourceOptions) { o.compression = c }
}

// WithCompressJobs bounds how many of an image's layers held uncompressed
// are compressed at once (n < 1: one per core, the default); each is
// compressed on every core already.
func WithCompressJobs(n int) SourceOption {
	return func(o *sourceOptions) { o.compressJobs = n }
}

// WithScratchDir keeps the layers a source holds uncompressed, once
// compressed, in files of dir, so that each is compressed once; the caller
// removes dir when done with the artifact. Without it, such a layer is
// compressed again whenever it is read, and a docker-daemon: source is
// read through go-containerregistry's daemon package.
func WithScratchDir(dir string) SourceOption {
	return func(o *sourceOptions) { o.scratch = dir }
}

// WithLogger sends Open's warnings (an OCI layout without its oci-layout
// file, ...) to log; without it they are discarded.
func WithLogger(log *slog.Logger) SourceOption {
	return func(o *sourceOptions) { o.log = log }
}

// WithDockerClient reads docker-daemon: sources with c: with a scratch
// directory, the image is saved from the daemon once, its layers compressed
// as they stream in.
func WithDockerClient(c *client.Client) SourceOption {
	return func(o *sourceOptions) { o.docker = c }
}

// WithRemoteOptions passes options (auth, transport, ...) to remote.Get for
// docker:// sources.
func WithRemoteOptions(opts ...remote.Option) SourceOption {
	return func(o *sourceOptions) { o.remote = append(o.remote, opts...) }
}

// WithNameOptions passes options (e.g. name.Insecure) to the parsing of
// docker:// and docker-daemon: references.
func WithNameOptions(opts ...name.Option) SourceOption {
	return func(o *sourceOptions) { o.name = append(o.name, opts...) }
}

// WithDaemonOptions passes options (e.g. daemon.WithClient) to daemon.Image
// for docker-daemon: sources. They come after the defaults
// (daemon.WithContext, daemon.WithUnbufferedOpener) and so override them.
func WithDaemonOptions(opts ...daemon.Option) SourceOption {
	return func(o *sourceOptions) { o.daemon = append(o.daemon, opts...) }
}

// Open resolves src to a v1.Image or a v1.ImageIndex. Layers are not read:
// destinations stream them when they write. What is cheap is checked here
// (the manifest or index parses, the config is readable, layout blobs exist),
// so that a source that is not an image fails with badinput.Err before
// anything is written anywhere.
//
// An OCI layout whose index.json holds one manifest (or one selected by tag
// or digest) yields that image or index; with several and no selector the
// layout's index.json itself is the artifact.
func Open(ctx context.Context, src Source, opts ...SourceOption) (Artifact, error) {
	o := sourceOptions{compression: CompressionGzip}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	var (
		a   Artifact
		err error
	)
	switch src.Transport {
	case TransportOCI:
		a, err = openLayout(src, o.log)
	case TransportDockerArchive:
		a, err = openArchive(src, o)
	case TransportDaemon:
		if o.docker != nil && o.scratch != "" {
			a, err = openDaemonSaved(ctx, src, o)
		} else {
			a, err = openDaemon(ctx, src, o)
		}
	case TransportRemote:
		a, err = openRemote(ctx, src, o)
	default:
		err = badinput.Errorf("unknown transport %q (want %s)", src.Transport, knownTransports)
	}
	if err != nil {
		return nil, fmt.Errorf("-source %s: %w", src, err)
	}
	return a, nil
}
