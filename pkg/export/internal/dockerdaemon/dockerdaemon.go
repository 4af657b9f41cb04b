// Package dockerdaemon is the Docker daemon as a destination of an export:
// connect to the engine, ask its platform, load an image under its tags
// through the API and read the image ID back. It is internal to pkg/export:
// the export flow is its only caller.
package dockerdaemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/moby/moby/client"
)

// NewClient connects to the Docker engine named by the environment
// (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION),
// by default /var/run/docker.sock. The client negotiates the API version on
// its first request (the default since moby/client v0.5; it replaces the
// deprecated, now no-op, WithAPIVersionNegotiation), so Debian's 20.10 engine
// (API 1.41) is spoken to in 1.41. No version is pinned.
func NewClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// Platform is the OS and architecture of the Docker engine.
func Platform(ctx context.Context, c *client.Client) (*v1.Platform, error) {
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return nil, fmt.Errorf("ask the Docker daemon for its platform: %w", err)
	}
	if v.Os == "" || v.Arch == "" {
		return nil, fmt.Errorf("the Docker daemon did not say its platform (os %q, arch %q); use -platform", v.Os, v.Arch)
	}
	return &v1.Platform{OS: v.Os, Architecture: v.Arch}, nil
}

// Write loads img into the Docker daemon as tags[0] (streamed as a
// docker-archive through the API), tags it with the other tags, and returns
// the image ID the daemon reports, after checking that every tag resolves to
// that ID.
func Write(ctx context.Context, c *client.Client, img v1.Image, tags []name.Tag, log *slog.Logger) (string, error) {
	opts := []daemon.Option{daemon.WithClient(c), daemon.WithContext(ctx)}
	resp, err := daemon.Write(tags[0], img, opts...)
	if err != nil {
		return "", fmt.Errorf("load %s into the Docker daemon: %w", tags[0].Name(), err)
	}
	if err := loadError(resp); err != nil {
		return "", fmt.Errorf("load %s into the Docker daemon: %w", tags[0].Name(), err)
	}
	for _, t := range tags[1:] {
		if err := daemon.Tag(tags[0], t, opts...); err != nil {
			return "", fmt.Errorf("tag %s as %s in the Docker daemon: %w", tags[0].Name(), t.Name(), err)
		}
	}

	var id string
	for _, t := range tags {
		got, err := c.ImageInspect(ctx, t.String())
		if err != nil {
			return "", fmt.Errorf("inspect %s in the Docker daemon: %w", t.Name(), err)
		}
		if got.ID == "" {
			return "", fmt.Errorf("inspect %s in the Docker daemon: no image ID in the answer", t.Name())
		}
		if id == "" {
			id = got.ID
		} else if got.ID != id {
			return "", fmt.Errorf("verify %s in the Docker daemon: image ID %s, but %s has %s", t.Name(), got.ID, tags[0].Name(), id)
		}
	}

	// The classic image store names an image by its config digest, the
	// containerd store by its manifest digest; anything else is worth a word.
	cfg, cerr := img.ConfigName()
	dig, derr := img.Digest()
	if cerr == nil && derr == nil && id != cfg.String() && id != dig.String() {
		log.Warn("the Docker daemon's image ID is neither the config nor the manifest digest",
			"image_id", id, "config", cfg.String(), "manifest", dig.String())
	}
	for _, t := range tags {
		log.Info("loaded into the Docker daemon", "tag", t.Name(), "image_id", id)
	}
	return id, nil
}

// loadError finds an error in the JSON message stream of an image load;
// the engine reports a failed load there, with HTTP 200.
func loadError(stream string) error {
	dec := json.NewDecoder(strings.NewReader(stream))
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			// Not JSON: old engines answer plain text; nothing to find.
			return nil
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return errors.New(m.ErrorDetail.Message)
		case m.Error != "":
			return errors.New(m.Error)
		}
	}
}
