package export

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/badinput"
)

func TestOpenRemote(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	img := srcImage(t, "linux/amd64")
	idx := srcIndex(t, "linux/amd64", "linux/arm64")
	imgRef, err := name.ParseReference(host+"/team/app:img", name.Insecure)
	assert.NilError(t, err)
	idxRef, err := name.ParseReference(host+"/team/app:idx", name.Insecure)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(imgRef, img))
	assert.NilError(t, remote.WriteIndex(idxRef, idx))

	tests := []struct {
		name string
		ref  string
		want v1.Hash
		kind string
	}{
		{"image by tag", host + "/team/app:img", srcDigest(t, img), "image"},
		{"index by tag", host + "/team/app:idx", srcDigest(t, idx), "index"},
		{"image by digest", host + "/team/app@" + srcDigest(t, img).String(), srcDigest(t, img), "image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ParseSource("docker://" + tc.ref)
			assert.NilError(t, err)
			got, err := Open(ctx, src, WithNameOptions(name.Insecure), WithRemoteOptions(remote.WithUserAgent("exportreport-test")))
			assert.NilError(t, err)
			assert.Equal(t, srcDigest(t, got), tc.want)
			mt, err := got.MediaType()
			assert.NilError(t, err)
			assert.Equal(t, mt.IsIndex(), tc.kind == "index")
		})
	}

	t.Run("missing tag", func(t *testing.T) {
		_, err := Open(ctx, Source{Transport: TransportRemote, Ref: host + "/team/app:nope"}, WithNameOptions(name.Insecure))
		assert.ErrorIs(t, err, badinput.Err)
		assert.ErrorContains(t, err, "not found in the registry")
	})
	t.Run("registry down is not bad input", func(t *testing.T) {
		down := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		downHost := strings.TrimPrefix(down.URL, "http://")
		down.Close()
		_, err := Open(ctx, Source{Transport: TransportRemote, Ref: downHost + "/a:b"}, WithNameOptions(name.Insecure),
			WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1})))
		assert.Assert(t, err != nil)
		assert.Check(t, !errors.Is(err, badinput.Err), "got %v", err)
	})
}
