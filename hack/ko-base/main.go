// Command ko-base pushes a minimal ko base image: an OCI index of linux/amd64
// and linux/arm64 images, each one empty layer, user 65532. Public bases
// cannot be pulled where the tests run; this one is made locally and pushed
// to the local registry, and KO_DEFAULTBASEIMAGE points ko at it. It prints
// the pushed reference, pinned by digest, on stdout.
//
//	go run ./hack/ko-base [-insecure] REGISTRY/REPO[:TAG]
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

func main() {
	insecure := flag.Bool("insecure", false, "push over plain HTTP / unverified TLS")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ko-base [-insecure] REGISTRY/REPO[:TAG]")
		os.Exit(2)
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(flag.Arg(0), opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ko-base: %s: %v\n", flag.Arg(0), err)
		os.Exit(2)
	}
	digest, err := push(ref)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ko-base: push %s: %v\n", ref, err)
		os.Exit(1)
	}
	fmt.Println(ref.Context().Digest(digest.String()).String())
}

func push(ref name.Reference) (v1.Hash, error) {
	var tb bytes.Buffer
	if err := tar.NewWriter(&tb).Close(); err != nil {
		return v1.Hash{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tb.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return v1.Hash{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
		if err != nil {
			return v1.Hash{}, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return v1.Hash{}, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = p.OS, p.Architecture
		cf.Config.User = "65532"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return v1.Hash{}, err
		}
		pl := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}})
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}
