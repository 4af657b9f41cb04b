package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
)

// floorMain pushes the image of the OCI layout dir to refs (HOST/REPO:TAG,
// one repository) as the floor: cold when the first tag is absent; only the
// manifest HEADs of an unchanged re-export when it names the image; when it
// names another image (a rebuild), one mount-offering POST per blob, which
// the registry answers 201 for a blob it has, and a PUT for the others.
// A src of docker-archive:FILE or docker-daemon:REF is read once and its
// layers compressed with the fastest compressor measured, then pushed.
func floorMain(ctx context.Context, src string, refs []string) error {
	if len(refs) == 0 {
		return fmt.Errorf("no references")
	}
	var img *image
	var err error
	if strings.HasPrefix(src, "docker-archive:") || strings.HasPrefix(src, "docker-daemon:") {
		dir, err := os.MkdirTemp("", "bench-floor-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		img, err = floorCompress(ctx, src, dir)
		if err != nil {
			return err
		}
	} else if img, err = readImage(src); err != nil {
		return err
	}
	var host, repo string
	tags := make([]string, len(refs))
	for i, r := range refs {
		slash, colon := strings.Index(r, "/"), strings.LastIndex(r, ":")
		if slash < 0 || colon < slash {
			return fmt.Errorf("reference %q is not HOST/REPO:TAG", r)
		}
		host, repo, tags[i] = r[:slash], r[slash+1:colon], r[colon+1:]
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	got, err := headManifest(ctx, client, host, repo, tags[0])
	switch {
	case err != nil:
		return floorPush(ctx, client, host, repo, img, tags, 4, false, false)
	case got == img.digest:
		return floorPush(ctx, client, host, repo, img, tags, 4, true, false)
	}
	return floorPush(ctx, client, host, repo, img, tags, 4, false, true)
}

// readImage reads back the one image writeImage wrote to the layout dir.
func readImage(dir string) (*image, error) {
	var index struct{ Manifests []descriptor }
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &index)
	}
	if err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("%s: not a layout of one image: %v", dir, err)
	}
	img := &image{dir: dir, digest: index.Manifests[0].Digest}
	img.manifest, err = os.ReadFile(img.blobPath(index.Manifests[0]))
	if err != nil {
		return nil, err
	}
	var m struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.Unmarshal(img.manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	img.blobs = append(m.Layers, m.Config)
	return img, nil
}

// floorPush sends img to host/repo with the fewest HTTP requests Distribution
// accepts: per blob one POST and one monolithic PUT (no HEAD: the registry is
// cold), jobs blobs at a time, then one manifest PUT per tag, jobs at a
// time. With existing set, everything is already there: one manifest HEAD
// per tag. With mount set (a rebuild), each POST offers the blob for
// mounting from the repository itself: 201 for a blob it holds, and no PUT.
func floorPush(ctx context.Context, client *http.Client, host, repo string, img *image, tags []string, jobs int, existing, mount bool) error {
	base := "http://" + host + "/v2/" + repo
	if existing {
		for _, t := range tags {
			got, err := headManifest(ctx, client, host, repo, t)
			if err != nil {
				return err
			}
			if got != img.digest {
				return fmt.Errorf("HEAD %s: digest %s, want %s", t, got, img.digest)
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, d := range img.blobs {
		g.Go(func() error { return floorBlob(gctx, client, base, repo, img, d, mount) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The manifest PUTs, at the same parallelism as the blobs.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, t := range tags {
		g.Go(func() error {
			req, _ := http.NewRequestWithContext(gctx, http.MethodPut, base+"/manifests/"+t, bytes.NewReader(img.manifest))
			req.Header.Set("Content-Type", manifestMediaType)
			return expect(client, req, http.StatusCreated)
		})
	}
	return g.Wait()
}

// storedBytes is the size of what the registry holds for repo:tag: the
// config and the layers its manifest lists.
func storedBytes(ctx context.Context, client *http.Client, host, repo, tag string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", manifestMediaType+", application/vnd.docker.distribution.manifest.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s:%s: %s", repo, tag, resp.Status)
	}
	var m struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return 0, fmt.Errorf("manifest of %s:%s: %w", repo, tag, err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// headManifest returns the digest the registry holds for repo:tag.
func headManifest(ctx context.Context, client *http.Client, host, repo, tag string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", manifestMediaType+", application/vnd.docker.distribution.manifest.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HEAD %s:%s: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

func floorBlob(ctx context.Context, client *http.Client, base, repo string, img *image, d descriptor, mount bool) error {
	post := base + "/blobs/uploads/"
	if mount {
		post += "?" + url.Values{"mount": {d.Digest}, "from": {repo}}.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, post, nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if mount && resp.StatusCode == http.StatusCreated {
		return nil
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s", req.URL, resp.Status)
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", d.Digest)
	loc.RawQuery = q.Encode()
	f, err := os.Open(img.blobPath(d))
	if err != nil {
		return err
	}
	defer f.Close()
	put, _ := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), f)
	put.ContentLength = d.Size
	put.Header.Set("Content-Type", "application/octet-stream")
	return expect(client, put, http.StatusCreated)
}

func expect(client *http.Client, req *http.Request, status int) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s: %s: %s", req.Method, (&url.URL{Path: req.URL.Path}).String(), resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
