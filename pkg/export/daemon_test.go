package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/test/distribution"
)

// uniqueDaemonTag is a tag no other run uses; its image is removed when the
// test ends.
func uniqueDaemonTag(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, err := rand.Read(b[:])
	assert.NilError(t, err)
	tag := "exportreport.test/export/daemon:t" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		// Not asserted: the image is absent when the export failed.
		_ = exec.Command("docker", "image", "rm", "--force", tag).Run()
	})
	return tag
}

func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	assert.NilError(t, err, "docker %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

func TestRunDaemon(t *testing.T) {
	distribution.RequireDockerEngine(t)
	img := seededImage(t, 20, 1024, 2)
	tags := []string{uniqueDaemonTag(t), uniqueDaemonTag(t)}
	opts := testOptions(t, img, tags...)
	opts.Daemon = true

	rep, err := Run(context.Background(), opts)
	assert.NilError(t, err)

	cfg, err := img.ConfigName()
	assert.NilError(t, err)
	assert.Equal(t, rep.Image.ImageID, cfg.String(), "the classic image store names an image by its config digest")
	for _, tag := range tags {
		assert.Equal(t, dockerCLI(t, "image", "inspect", "--format", "{{.Id}}", tag), rep.Image.ImageID, tag)
	}
	assert.Equal(t, rep.Image.Digest, "")
	assert.Equal(t, rep.Image.ManifestSize, int64(0))
	assert.Equal(t, rep.Image.MediaType, "")
	assert.DeepEqual(t, rep.Image.Tags, tags) // already fully qualified

	got, err := report.Read(opts.ReportPath)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Image, rep.Image)

	t.Run("again: already loaded, tags re-pointed", func(t *testing.T) {
		opts := testOptions(t, img, tags[1], uniqueDaemonTag(t))
		opts.Daemon = true
		again, err := Run(context.Background(), opts)
		assert.NilError(t, err)
		assert.Equal(t, again.Image.ImageID, rep.Image.ImageID)
		assert.Equal(t, dockerCLI(t, "image", "inspect", "--format", "{{.Id}}", opts.Tags[1]), rep.Image.ImageID)
	})
}

// platformImage is a small image whose config says platform p.
func platformImage(t *testing.T, seed int64, p v1.Platform) v1.Image {
	t.Helper()
	img := seededImage(t, seed, 512, 1)
	cfg, err := img.ConfigFile()
	assert.NilError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cfg)
	assert.NilError(t, err)
	return img
}

func TestRunDaemonIndexSource(t *testing.T) {
	distribution.RequireDockerEngine(t)
	arch := dockerCLI(t, "version", "--format", "{{.Server.Arch}}")
	other := "arm64"
	if arch == "arm64" {
		other = "amd64"
	}
	native := v1.Platform{OS: "linux", Architecture: arch}
	foreign := v1.Platform{OS: "linux", Architecture: other}
	images := map[string]v1.Image{arch: platformImage(t, 21, native), other: platformImage(t, 22, foreign)}
	var idx v1.ImageIndex = empty.Index
	for _, p := range []v1.Platform{foreign, native} {
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: images[p.Architecture], Descriptor: v1.Descriptor{Platform: &p}})
	}

	for _, tc := range []struct {
		name     string
		platform string
		want     string // architecture of the child loaded
	}{
		{name: "the daemon's platform by default", want: arch},
		{name: "-platform wins", platform: "linux/" + other, want: other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t, idx, uniqueDaemonTag(t))
			opts.Daemon, opts.Platform = true, tc.platform
			rep, err := Run(context.Background(), opts)
			assert.NilError(t, err)
			cfg, err := images[tc.want].ConfigName()
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.ImageID, cfg.String())
			assert.Equal(t, dockerCLI(t, "image", "inspect", "--format", "{{.Architecture}}", opts.Tags[0]), tc.want)
		})
	}
}
