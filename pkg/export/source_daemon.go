package export

// Opening an image in the Docker daemon (docker-daemon:REF); the saved
// stream read without go-containerregistry is in source_daemon_save.go.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/daemon"

	"github.com/exportreport/exportreport/pkg/badinput"
)

func openDaemon(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	opts := append([]daemon.Option{daemon.WithContext(ctx), daemon.WithUnbufferedOpener()}, o.daemon...)
	img, err := daemon.Image(ref, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, badinput.Errorf("the Docker daemon has no image %s: %w", ref, err)
		}
		return nil, fmt.Errorf("docker daemon: %w", err)
	}
	if _, err := img.ConfigFile(); err != nil {
		return nil, fmt.Errorf("docker daemon: image %s: %w", ref, err)
	}
	return img, nil
}

// openDaemonSaved reads src with one image save (source_daemon_save.go).
func openDaemonSaved(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	return openDaemonStream(ctx, ref, o)
}

// isNotFound recognises the Docker client's "not found" errors (errdefs'
// NotFound interface) without importing errdefs.
func isNotFound(err error) bool {
	var nf interface{ NotFound() }
	if errors.As(err, &nf) {
		return true
	}
	return strings.Contains(err.Error(), "No such image")
}
