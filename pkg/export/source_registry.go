package export

// Opening an image or index in a registry (docker://REF).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/exportreport/exportreport/pkg/badinput"
)

func openRemote(ctx context.Context, src Source, o sourceOptions) (Artifact, error) {
	ref, err := name.ParseReference(src.Ref, o.name...)
	if err != nil {
		return nil, badinput.Errorf("reference %q: %w", src.Ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, o.remote...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		if isRegistryNotFound(err) {
			return nil, badinput.Errorf("%s not found in the registry: %w", ref, err)
		}
		return nil, err
	}
	var a Artifact
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		if _, err := idx.IndexManifest(); err != nil {
			return nil, badinput.Errorf("%s: index: %w", ref, err)
		}
		a = idx
	case mt.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		if err := validateImage(img, desc.Descriptor, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		a = img
	case mt.IsSchema1():
		return nil, badinput.Errorf("%s is a Docker schema 1 manifest, which is not supported", ref)
	default:
		return nil, badinput.Errorf("%s has media type %q, not an image or an index", ref, mt)
	}
	return a, nil
}

func isRegistryNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	return slices.ContainsFunc(te.Errors, func(d transport.Diagnostic) bool {
		return d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode
	})
}
