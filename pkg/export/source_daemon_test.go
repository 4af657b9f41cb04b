package export

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/test/distribution"
)

// srcDockerClient connects to the Docker engine, or skips (loudly) when there
// is none and CI is unset.
func srcDockerClient(t *testing.T) *client.Client {
	t.Helper()
	distribution.RequireDockerEngine(t)
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	assert.NilError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srcDockerClient(t)
	img := srcImage(t, "linux/amd64")
	tag, err := name.NewTag(fmt.Sprintf("exportreport-test/source:%d", time.Now().UnixNano()))
	assert.NilError(t, err)
	_, err = daemon.Write(tag, img, daemon.WithClient(c), daemon.WithContext(ctx))
	assert.NilError(t, err)
	t.Cleanup(func() {
		_, err := c.ImageRemove(context.Background(), tag.String(), client.ImageRemoveOptions{Force: true, PruneChildren: true})
		assert.Check(t, err)
	})

	src, err := ParseSource("docker-daemon:" + tag.String())
	assert.NilError(t, err)
	got, err := Open(ctx, src, WithDaemonOptions(daemon.WithClient(c)))
	assert.NilError(t, err)
	gotImg, ok := got.(v1.Image)
	assert.Assert(t, ok, "got %T", got)

	wantCfg, err := img.ConfigFile()
	assert.NilError(t, err)
	gotCfg, err := gotImg.ConfigFile()
	assert.NilError(t, err)
	assert.DeepEqual(t, gotCfg.RootFS.DiffIDs, wantCfg.RootFS.DiffIDs)
	assert.Equal(t, gotCfg.Architecture, "amd64")
	// The image ID the daemon reports is the config digest.
	assert.Equal(t, srcDigest(t, srcConfigNamer{gotImg}), srcDigest(t, srcConfigNamer{img}))
	// Layers stream out of the daemon with the same content.
	layers, err := gotImg.Layers()
	assert.NilError(t, err)
	assert.Assert(t, is.Len(layers, 2))
	diffID, err := layers[1].DiffID()
	assert.NilError(t, err)
	assert.Equal(t, diffID, wantCfg.RootFS.DiffIDs[1])

	t.Run("missing image", func(t *testing.T) {
		_, err := Open(ctx, Source{Transport: TransportDaemon, Ref: "exportreport-test/no-such-image:never"}, WithDaemonOptions(daemon.WithClient(c)))
		assert.ErrorIs(t, err, badinput.Err)
		assert.ErrorContains(t, err, "the Docker daemon has no image")
	})
}

type srcConfigNamer struct{ v1.Image }

func (c srcConfigNamer) Digest() (v1.Hash, error) { return c.ConfigName() }
